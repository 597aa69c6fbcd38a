"""Reading untrusted archives with bounded memory and time, whatever their headers say.

Python's own readers trust the archive too much for an upload:

- ``tarfile`` reads a pax extended header whole into memory, whatever size it declares, and
  parses it with a regular expression that is quadratic in its length (CVE-2024-6232, fixed in
  3.11.10; Debian 12 ships 3.11.2): a 255-byte ``.tar.gz`` held a web worker for 16 s, a 972 KB
  one grew memory by 962 MiB. The tar stream is therefore read here, by a small parser of the
  ustar/pax/GNU headers that refuses an extended header above ``MAX_EXTENDED_HEADER`` before
  reading it and parses the pax records in one linear pass.
- ``zipfile`` builds a ``ZipInfo`` for every entry of the central directory before anyone can
  look at how many there are, and it walks the directory's bytes, not the count the end record
  declares. ``zip_entry_count`` walks the central directory's fixed-size headers itself and stops
  one entry past the limit, so that ``zipfile`` is only ever handed a directory of bounded size.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
import zlib
from collections.abc import Callable, Iterator

BLOCK = 512
# A pax header holds a path, a size, times: a few hundred bytes in practice. GNU long names are
# limited like PATH_MAX.
MAX_EXTENDED_HEADER = 64 * 1024
MAX_LONG_NAME = 4096
# Extended headers (pax, GNU long names) are counted like entries: a stream of nothing but
# headers must end as quickly as a stream of files.
MAX_META_HEADERS_PER_ENTRY = 3


class ArchiveRefused(Exception):
    """The archive cannot be read safely; ``message`` is a sentence for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- tar.gz --------------------------------------------------------------------------------


@dataclasses.dataclass
class TarEntry:
    """One entry of a tar stream. ``read`` must be called (once) before the next entry is taken,
    or the entry's data is skipped."""

    name: str
    kind: str  # file | dir | symlink | hardlink | other
    size: int
    read: Callable[[int], bytes]


def _octal_or_base256(field: bytes, what: str) -> int:
    if field[:1] and field[0] & 0x80:
        # GNU base-256: a big-endian number after the marker byte (negative numbers are refused).
        if field[0] == 0xFF:
            raise ArchiveRefused(f"The tar.gz archive is damaged: a negative {what}.")
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveRefused(f"The tar.gz archive is damaged: its {what} field is not a number.") from None


def _checksum_ok(header: bytes) -> bool:
    stored = _octal_or_base256(header[148:156], "checksum")
    unsigned = sum(header[:148]) + 8 * 0x20 + sum(header[156:])
    # Some old writers summed signed bytes: tarfile accepts both, so do we.
    signed = sum(struct.unpack("148b", header[:148])) + 8 * 0x20 + sum(struct.unpack("356b", header[156:]))
    return stored in (unsigned, signed)


def _nul_terminated(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveRefused(f"A member name of the tar.gz archive is not UTF-8 text: {raw[:80]!r}.") from None


def parse_pax_records(data: bytes) -> dict[str, str]:
    """``"%d %s=%s\\n"`` records, in one linear pass; later records win, as in POSIX."""
    records: dict[str, str] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:  # padding after the last record
            break
        space = data.find(b" ", pos, min(end, pos + 20))
        if space < 0 or not data[pos:space].isdigit():
            raise ArchiveRefused("The tar.gz archive is damaged: a pax extended header has a malformed record.")
        length = int(data[pos:space])
        if length <= space - pos + 1 or pos + length > end or data[pos + length - 1] != 0x0A:
            raise ArchiveRefused("The tar.gz archive is damaged: a pax extended header has a malformed record.")
        key, equals, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not equals:
            raise ArchiveRefused("The tar.gz archive is damaged: a pax extended header has a malformed record.")
        try:
            records[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveRefused("A pax extended header of the tar.gz archive is not UTF-8 text.") from None
        pos += length
    return records


KINDS = {b"0": "file", b"\0": "file", b"7": "file", b"5": "dir", b"1": "hardlink", b"2": "symlink"}


def iter_tar_gz(data: bytes, *, max_entries: int) -> Iterator[TarEntry]:
    """The entries of a gzip-compressed tar stream, decompressed as they are read.

    Memory is bounded by what the caller reads plus one extended header (at most
    ``MAX_EXTENDED_HEADER``); the number of headers is bounded by ``max_entries``.
    """
    stream = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    try:
        yield from _entries(stream, max_entries=max_entries)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise ArchiveRefused(f"The tar.gz archive is damaged: {exc}.") from None


def _read_exact(stream: gzip.GzipFile, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ArchiveRefused("The tar.gz archive is damaged: it ends in the middle of a member.")
    return data


def _skip(stream: gzip.GzipFile, size: int) -> None:
    while size > 0:
        chunk = stream.read(min(size, 1024 * 1024))
        if not chunk:
            raise ArchiveRefused("The tar.gz archive is damaged: it ends in the middle of a member.")
        size -= len(chunk)


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _entries(stream: gzip.GzipFile, *, max_entries: int) -> Iterator[TarEntry]:
    headers = 0
    pax: dict[str, str] = {}
    long_name: str | None = None
    while True:
        header = stream.read(BLOCK)
        if len(header) == 0 and headers == 0:
            raise ArchiveRefused("The tar.gz archive is empty.")
        if len(header) < BLOCK:
            # No end-of-archive blocks: tarfile accepts a stream that simply stops, so do we.
            if header.strip(b"\0"):
                raise ArchiveRefused("The tar.gz archive is damaged: it ends in the middle of a header.")
            return
        if not header.strip(b"\0"):
            return  # end of archive
        headers += 1
        if headers > max_entries * MAX_META_HEADERS_PER_ENTRY:
            raise ArchiveRefused(f"The archive holds more than {max_entries} files.")
        if not _checksum_ok(header):
            raise ArchiveRefused("The tar.gz archive is damaged: a header's checksum is wrong.")
        typeflag = header[156:157]
        size = _octal_or_base256(header[124:136], "size")
        if typeflag in (b"x", b"g", b"L", b"K"):
            limit = MAX_LONG_NAME if typeflag in (b"L", b"K") else MAX_EXTENDED_HEADER
            if size > limit:
                what = "GNU long name" if typeflag in (b"L", b"K") else "pax extended header"
                raise ArchiveRefused(
                    f"The tar.gz archive has a {what} of {size} bytes (at most {limit} are accepted): refused."
                )
            payload = _read_exact(stream, size)
            _skip(stream, _padded(size) - size)
            if typeflag == b"x":
                pax.update(parse_pax_records(payload))
            elif typeflag == b"g":
                parse_pax_records(payload)  # validated, but global defaults change nothing we use
            elif typeflag == b"L":
                long_name = _decode_name(_nul_terminated(payload))
            continue
        if "size" in pax:
            if not pax["size"].isdigit():
                raise ArchiveRefused("The tar.gz archive is damaged: a pax size is not a number.")
            size = int(pax["size"])
        if "path" in pax:
            name = pax["path"]
        elif long_name is not None:
            name = long_name
        else:
            raw = _nul_terminated(header[0:100])
            if header[257:265] == b"ustar\x0000":  # POSIX ustar: a prefix completes the name
                prefix = _nul_terminated(header[345:500])
                if prefix:
                    raw = prefix + b"/" + raw
            name = _decode_name(raw)
        pax, long_name = {}, None
        kind = KINDS.get(typeflag, "other")
        remaining = [size]

        def read(limit: int, _remaining: list[int] = remaining) -> bytes:
            # Read at most ``limit`` + 1 bytes so that a caller can tell "more than declared".
            want = min(_remaining[0], limit + 1)
            chunk = _read_exact(stream, want)
            _remaining[0] -= want
            return chunk

        yield TarEntry(name=name, kind=kind, size=size, read=read)
        _skip(stream, remaining[0])
        _skip(stream, _padded(size) - size)


# --- zip -----------------------------------------------------------------------------------

EOCD_SIGNATURE = b"PK\x05\x06"
ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
ZIP64_EOCD_SIGNATURE = b"PK\x06\x06"
CENTRAL_SIGNATURE = b"PK\x01\x02"
CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # 46 bytes
MAX_COMMENT = 0xFFFF


def zip_entry_count(data: bytes, *, limit: int) -> int:
    """How many entries the zip's central directory holds, counted by walking its headers; raise
    ArchiveRefused as soon as the count passes ``limit`` (or as the end record declares more)."""
    eocd = data.rfind(EOCD_SIGNATURE, max(0, len(data) - (22 + MAX_COMMENT)))
    if eocd < 0 or len(data) - eocd < 22:
        raise ArchiveRefused("The zip archive is damaged: no end of central directory record.")
    _, _, _, _, declared, cd_size, _, _ = struct.unpack_from("<4s4H2LH", data, eocd)
    end_of_directory = eocd
    locator = eocd - 20
    if locator >= 0 and data[locator : locator + 4] == ZIP64_LOCATOR_SIGNATURE:
        # As zipfile does: the zip64 record sits right before the locator, whatever its offset says.
        zip64 = locator - 56
        if zip64 < 0 or data[zip64 : zip64 + 4] != ZIP64_EOCD_SIGNATURE:
            raise ArchiveRefused("The zip archive is damaged: its zip64 end record is missing.")
        _, declared, cd_size, _ = struct.unpack_from("<4Q", data, zip64 + 24)
        end_of_directory = zip64
    if declared > limit:
        raise ArchiveRefused(f"The archive holds more than {limit} files ({declared} declared).")
    # Where zipfile will look: right before the end record (data may have been prepended).
    start = end_of_directory - cd_size
    if start < 0:
        raise ArchiveRefused("The zip archive is damaged: its central directory lies outside the file.")
    count = 0
    pos = start
    while pos < end_of_directory:
        if data[pos : pos + 4] != CENTRAL_SIGNATURE or pos + CENTRAL_HEADER.size > end_of_directory:
            raise ArchiveRefused("The zip archive is damaged: a bad central directory entry.")
        fields = CENTRAL_HEADER.unpack_from(data, pos)
        name_length, extra_length, comment_length = fields[12], fields[13], fields[14]
        pos += CENTRAL_HEADER.size + name_length + extra_length + comment_length
        count += 1
        if count > limit:
            raise ArchiveRefused(f"The archive holds more than {limit} files.")
    return count
