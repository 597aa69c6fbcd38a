"""Hostile archives, crafted byte by byte: what an attacker would upload as a bundle."""

from __future__ import annotations

import functools
import io
import struct
import tarfile
import zlib

from tests.catalog.conftest import example_files


def _gzip(chunks) -> bytes:
    """A gzip stream of the concatenated chunks (a generator: the input is never held whole)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = io.BytesIO()
    for chunk in chunks:
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    return out.getvalue()


def _tar_header(name: str, size: int, typeflag: bytes = b"0") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = typeflag
    return info.tobuf(format=tarfile.USTAR_FORMAT)


@functools.cache
def pax_header_bomb(declared: int = 900 * 1024 * 1024) -> bytes:
    """A pax extended header of ``declared`` bytes of digits and spaces, compressed to about a
    thousandth: Python 3.11's tarfile reads it whole into memory (962 MiB for a 972 KB upload
    when the demo was measured) and parses it with a regular expression quadratic in its length
    (CVE-2024-6232)."""

    def chunks():
        yield _tar_header("././@PaxHeader", declared, tarfile.XHDTYPE)
        block = b"0 " * (512 * 1024)
        left = declared
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece
        yield b"\0" * (-declared % 512) + b"\0" * 1024

    return _gzip(chunks())


@functools.cache
def pax_header_quadratic(length: int = 250_000) -> bytes:
    """The small variant of the CVE: a few hundred bytes compressed, a quarter of a megabyte of
    pax header that tarfile's regular expression walks quadratically (16 s in the review)."""

    def chunks():
        payload = b"0" * length
        yield _tar_header("././@PaxHeader", len(payload), tarfile.XHDTYPE)
        yield payload + b"\0" * (-len(payload) % 512) + b"\0" * 1024

    return _gzip(chunks())


def _zip_entry(name: bytes, offset: int) -> tuple[bytes, bytes]:
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = (
        struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset
        )
        + name
    )
    return local, central


@functools.cache
def zip_of_empty_entries(count: int = 200_000, *, declared: int | None = None) -> bytes:
    """``count`` empty stored entries. The end record declares ``declared`` entries (all of them
    by default, through a zip64 end record): zipfile builds one object per entry of the central
    directory whatever the end record says."""
    locals_, centrals = [], []
    offset = 0
    for i in range(count):
        local, central = _zip_entry(f"f{i}".encode(), offset)
        locals_.append(local)
        centrals.append(central)
        offset += len(local)
    body = b"".join(locals_)
    directory = b"".join(centrals)
    cd_offset, cd_size = len(body), len(directory)
    declared = count if declared is None else declared
    if declared > 0xFFFF:
        zip64_at = cd_offset + cd_size
        zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, declared, declared, cd_size, cd_offset)
        locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
        end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
        return body + directory + zip64 + locator + end
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, declared, declared, cd_size, cd_offset, 0)
    return body + directory + end


def tar_gz_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bundle_with_member(name: str, data: bytes = b"x = 1\n") -> bytes:
    """The small example with one more member, named as given (a newline in it, say)."""
    files = dict(example_files("leave_portal", "1.0.0"))
    files[name] = data
    return tar_gz_of(files)


def bundle_with_manifest(manifest: str) -> bytes:
    files = dict(example_files("leave_portal", "1.0.0"))
    files["lifetime.toml"] = manifest.encode()
    return tar_gz_of(files)


def manifest_with_schema(schema: str, *, name: str = "leave_portal") -> str:
    manifest = example_files("leave_portal", "1.0.0")["lifetime.toml"].decode()
    return manifest.replace('schema = "leave_portal"', f'schema = "{schema}"').replace(
        'name = "leave_portal"', f'name = "{name}"', 1
    )
