"""Viewers of the status pages, for bench_status_pages.py (which sets the environment variables).

Most viewers watch the running plan's page the way the browser does: they load it once, then poll
its live fragment every 2 s with the cursor and the ETag the last answer gave (htmx's
hx-headers). Some watch the environment board; a few page through the plans list."""

from __future__ import annotations

import collections
import json
import os
import random
import re

from locust import HttpUser, constant, events, task

PLAN = os.environ["BENCH_PLAN_KEY"]
SESSION = os.environ["BENCH_SESSION"]
CODES_FILE = os.environ["BENCH_CODES_FILE"]
codes: collections.Counter[str] = collections.Counter()

POLLER = re.compile(r'<div id="plan-live"([^>]*)>')


@events.request.add_listener
def count(request_type, name, response, exception, **kwargs):
    if response is not None:
        codes[f"{name} {response.status_code}"] += 1


@events.test_stop.add_listener
def save(environment, **kwargs):
    with open(CODES_FILE, "w") as out:
        json.dump(dict(codes), out)


class Viewer(HttpUser):
    wait_time = constant(2)

    def on_start(self) -> None:
        self.client.cookies.set("sessionid", SESSION)
        roll = random.random()
        self.role = "plan" if roll < 0.8 else "board" if roll < 0.95 else "list"
        self.etag = ""
        if self.role == "plan":
            self._read(self.client.get(f"/plans/{PLAN}/", name="plan page"))
        elif self.role == "board":
            self.etag = self.client.get("/board/", name="board page").headers.get("ETag", "")

    def _read(self, response) -> None:
        match = POLLER.search(response.text or "")
        if not match:
            return
        attrs = match.group(1)
        url = re.search(r'hx-get="([^"]+)"', attrs)
        etag = re.search(r'"If-None-Match": "([^\']+?)"}', attrs)
        if url:
            self.url = url.group(1).replace("&amp;", "&")
        if etag:
            self.etag = etag.group(1).replace("\\u0022", '"')

    @task
    def poll(self) -> None:
        if self.role == "plan":
            response = self.client.get(self.url, headers={"If-None-Match": self.etag}, name="plan live")
            if response.status_code == 200:
                self._read(response)
        elif self.role == "board":
            response = self.client.get("/board/live/", headers={"If-None-Match": self.etag}, name="board live")
            self.etag = response.headers.get("ETag", self.etag)
        else:
            self.client.get(f"/plans/?page={random.randint(1, 400)}", name="plans list")
