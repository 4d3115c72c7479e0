"""Certificates for tests of TLS to Redis: a CA of the test's own, a server certificate it signed
for one IP address, and another CA that signed nothing the server holds (openssl, in a temp dir)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificates(where: Path, ip: str = "127.0.0.1") -> dict[str, Path]:
    """ca.crt, and srv.crt/srv.key that it signed for `ip`; other.crt, a CA that is not the server's."""
    p = {
        name: where / name
        for name in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt", "ext", "other.key", "other.crt")
    }
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["ca.key"]), "-out", str(p["ca.crt"]),
            "-days", "2", "-subj", "/CN=cellblock test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["srv.key"]), "-out", str(p["srv.csr"]),
            "-subj", f"/CN={ip}")  # fmt: skip
    p["ext"].write_text(f"subjectAltName=IP:{ip}\n")
    openssl("x509", "-req", "-in", str(p["srv.csr"]), "-CA", str(p["ca.crt"]), "-CAkey", str(p["ca.key"]),
            "-CAcreateserial", "-out", str(p["srv.crt"]), "-days", "2", "-extfile", str(p["ext"]))  # fmt: skip
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(p["other.key"]), "-out",
            str(p["other.crt"]), "-days", "2", "-subj", "/CN=another CA")  # fmt: skip
    return p
