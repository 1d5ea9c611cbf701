"""The loopback receivers of :mod:`tests.support.receivers` record what they receive."""

from __future__ import annotations

import smtplib
import urllib.request

from tests.support.receivers import SmtpReceiver, WebhookReceiver


def test_receivers_record_what_they_receive() -> None:
    with SmtpReceiver() as smtp, WebhookReceiver() as hook:
        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nbody\r\n")
        request = urllib.request.Request(
            f"http://127.0.0.1:{hook.port}/x", data=b'{"message": "m"}', method="POST"
        )
        urllib.request.urlopen(request).close()
    assert smtp.mails[0].recipients == ("b@example.com",)
    assert smtp.mails[0].subject == "hi"
    assert hook.bodies("/x") == ["m"]
