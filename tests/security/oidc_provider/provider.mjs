// An OpenID Connect provider for the single sign-on tests: oidc-provider with its development
// login pages (any password is accepted for a known login; unknown logins are refused).
//   node provider.mjs <port> <redirect_uri>
// Accounts come from OIDC_TEST_ACCOUNTS: {"login": {"groups": ["..."], "email": "..."}}.
import Provider from "oidc-provider";

const [port, redirectUri] = [Number(process.argv[2]), process.argv[3]];
const accounts = JSON.parse(process.env.OIDC_TEST_ACCOUNTS || "{}");
const issuer = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [
    {
      client_id: "lifetime-console",
      client_secret: process.env.OIDC_TEST_CLIENT_SECRET || "lifetime-test-secret",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_post",
      // The console checks when the user really authenticated (re-authentication).
      require_auth_time: true,
    },
  ],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["lifetime-test-provider-cookie-key"] },
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: account.email || `${id}@sso.example`,
          email_verified: true,
          preferred_username: id,
          name: id,
          groups: account.groups || [],
        };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.on("server_error", (ctx, error) => console.error("server_error", error));
provider.listen(port, "127.0.0.1", () => console.log(`oidc-provider listening on ${issuer}`));
