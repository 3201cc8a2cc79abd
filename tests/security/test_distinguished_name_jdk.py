"""The subject text checked against the JDK itself: Kafka's principal is whatever
X500Principal.getName() returns, so where a JDK is installed, ask it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from tls_material import CertificateAuthority

from broker.security.distinguished_name import subject_name

from .test_distinguished_name import CASES, write_case_certificates

JAVA = shutil.which("java")

# Prints each certificate's subject as Kafka's SSL principal builder reads it.
PRINT_SUBJECTS = """
import java.io.FileInputStream;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.HexFormat;

public class PrintSubjects {
    public static void main(String[] paths) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (String path : paths) {
            try (FileInputStream in = new FileInputStream(path)) {
                X509Certificate c = (X509Certificate) factory.generateCertificate(in);
                String name = c.getSubjectX500Principal().getName();
                System.out.println(HexFormat.of().formatHex(name.getBytes(StandardCharsets.UTF_8)));
            }
        }
    }
}
"""


@pytest.mark.skipif(JAVA is None, reason="no java on PATH")
def test_every_case_matches_the_jdk(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path, "ca", "CN=jdk check CA")
    paths = write_case_certificates(ca, tmp_path)
    source = tmp_path / "PrintSubjects.java"
    source.write_text(PRINT_SUBJECTS)
    assert JAVA is not None
    done = subprocess.run(
        [JAVA, str(source), *(str(p) for p in paths.values())],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # One name a line, as the hex of its UTF-8 (names may hold newlines).
    printed = [bytes.fromhex(line).decode() for line in done.stdout.split()]
    ours = [subject_name(x509.load_der_x509_certificate(p.read_bytes())) for p in paths.values()]
    assert printed == ours
    assert printed == [CASES[case][1] for case in paths]
