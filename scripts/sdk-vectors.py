#!/usr/bin/env python3
"""Signed-webhook test vectors for Telnyx, Vonage and Plivo, judged by the providers' own SDK code.

callhook's Telnyx and Vonage verifiers were otherwise only tested against callhook's own
simulator. This script signs the fixture bodies in tests/fixtures/ with ordinary
libraries (PyNaCl for Ed25519, PyJWT for HS256), asks each provider's official Python SDK
whether it accepts every vector at a fixed "now", and writes what the SDK said to
tests/fixtures/sdk_vectors/{telnyx,vonage,plivo}.json. tests/sdk_vectors.rs replays the vectors
through callhook at the same "now".

  SDK verifiers used:
    Telnyx: telnyx.lib.webhook_verification.verify_webhook_signature(payload, headers, public_key)
            (also what `Telnyx(...).webhooks.unwrap(...)` runs; both are called and must agree)
    Vonage: vonage_jwt.verify_signature(token, signature_secret)
            (what `vonage.Voice.verify_signature` delegates to). It checks only the JWT's
            HS256 signature plus PyJWT's default claim checks (exp, nbf, iat not in the
            future); it does not compare `payload_hash` with the body, which Vonage's
            docs ask the receiver to do, so the generator records that comparison
            separately as `payload_hash_matches`.
    Plivo:  plivo.utils.signature_v3.validate_v3_signature(...), with the signatures made by
            the same module's construct_post_url and get_signature_v3.

Run it from the repository root (needs only PyPI packages; the output is deterministic):

    python3 -m venv /tmp/sdkvenv
    /tmp/sdkvenv/bin/pip install telnyx vonage-jwt pyjwt pynacl plivo
    /tmp/sdkvenv/bin/python scripts/sdk-vectors.py

then review the diff of tests/fixtures/sdk_vectors/ and run `cargo test --test sdk_vectors`.
"""

import base64
import datetime
import hashlib
import json
import pathlib
import warnings
from importlib import metadata
from unittest import mock

import jwt
import nacl.signing

import telnyx
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature
import vonage_jwt
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "sdk_vectors"

# Fixed clocks, a little after the fixtures' own event times (2026-11-24T10:0x:xxZ).
TELNYX_NOW = 1795514520  # 2026-11-24T10:02:00Z
VONAGE_NOW = 1795514490  # 2026-11-24T10:01:30Z
TOLERANCE = 300  # both callhook's and the Telnyx SDK's window, seconds


def fixture(name):
    # The files end in a newline for the editor's sake; the provider's body does not.
    return (FIXTURES / name).read_text(encoding="utf-8").rstrip("\n")


def versions(*packages):
    return {p: metadata.version(p) for p in packages}


def seed(label):
    return hashlib.sha256(label.encode()).digest()


# --------------------------------------------------------------------------- Telnyx

TELNYX_URL = "https://hooks.example.com/webhooks/telephony/telnyx/events"
TELNYX_KEY = nacl.signing.SigningKey(seed("callhook sdk vectors: telnyx signing key"))
TELNYX_OTHER_KEY = nacl.signing.SigningKey(seed("callhook sdk vectors: some other telnyx key"))


def b64(raw):
    return base64.b64encode(raw).decode("ascii")


def telnyx_sign(key, timestamp, body):
    return b64(key.sign(f"{timestamp}|{body}".encode("utf-8")).signature)


def telnyx_sdk(vector):
    """The Telnyx SDK's verdict at the vector's `now`: (accepts, what it said)."""
    headers, body, public_key = vector["headers"], vector["body"], vector["public_key"]
    with mock.patch("time.time", return_value=float(vector["now"])):
        try:
            verify_webhook_signature(body, headers, public_key)
            verdict = (True, "accepted")
        except WebhookVerificationError as e:
            verdict = (False, f"WebhookVerificationError: {e.message}")
        # The client-level entry point must agree with the function it wraps.
        client = telnyx.Telnyx(api_key="KEY_unused", public_key=public_key)
        try:
            client.webhooks.unwrap(body, headers=headers)
            unwrapped = True
        except WebhookVerificationError:
            unwrapped = False
    assert unwrapped == verdict[0], (vector["name"], verdict)
    return verdict


def telnyx_vectors():
    key = b64(bytes(TELNYX_KEY.verify_key))
    now = TELNYX_NOW
    hangup = fixture("telnyx_call_hangup.json")

    def vector(name, description, body, ts, signature, public_key=key, fixture_name=None, drop=()):
        headers = {
            "content-type": "application/json",
            "telnyx-signature-ed25519": signature,
            "telnyx-timestamp": str(ts),
        }
        for h in drop:
            del headers[h]
        v = {"name": name, "description": description}
        if fixture_name:
            v["fixture"] = fixture_name
        v.update({"now": now, "url": TELNYX_URL, "headers": headers, "body": body, "public_key": public_key})
        return v

    out = []
    for name in ["telnyx_call_initiated.json", "telnyx_call_answered.json", "telnyx_call_hangup.json"]:
        body = fixture(name)
        out.append(vector(f"valid_{name.removeprefix('telnyx_').removesuffix('.json')}",
                          "signed now with the configured key", body, now, telnyx_sign(TELNYX_KEY, now, body),
                          fixture_name=name))
    old = now - TOLERANCE
    out.append(vector("valid_timestamp_at_tolerance_edge", "timestamp exactly 300 s before now", hangup, old,
                      telnyx_sign(TELNYX_KEY, old, hangup)))
    early = now + TOLERANCE
    out.append(vector("valid_timestamp_300s_ahead", "timestamp exactly 300 s after now (sender clock ahead)", hangup,
                      early, telnyx_sign(TELNYX_KEY, early, hangup)))
    tampered = hangup.replace('"normal_clearing"', '"user_busy"')
    assert tampered != hangup
    out.append(vector("tampered_body", "hangup_cause changed after signing", tampered, now,
                      telnyx_sign(TELNYX_KEY, now, hangup)))
    out.append(vector("wrong_public_key", "signed by a key other than the configured one", hangup, now,
                      telnyx_sign(TELNYX_OTHER_KEY, now, hangup)))
    stale = now - TOLERANCE - 1
    out.append(vector("stale_timestamp", "correctly signed, timestamp 301 s before now", hangup, stale,
                      telnyx_sign(TELNYX_KEY, stale, hangup)))
    future = now + TOLERANCE + 1
    out.append(vector("future_timestamp", "correctly signed, timestamp 301 s after now", hangup, future,
                      telnyx_sign(TELNYX_KEY, future, hangup)))
    out.append(vector("timestamp_header_changed", "signed for now, header says now-1", hangup, now - 1,
                      telnyx_sign(TELNYX_KEY, now, hangup)))
    out.append(vector("signature_without_timestamp_prefix", "Ed25519 over the body alone", hangup, now,
                      b64(TELNYX_KEY.sign(hangup.encode("utf-8")).signature)))
    out.append(vector("truncated_signature", "signature cut to 63 bytes", hangup, now,
                      b64(base64.b64decode(telnyx_sign(TELNYX_KEY, now, hangup))[:63])))
    out.append(vector("missing_signature_header", "no telnyx-signature-ed25519 header", hangup, now,
                      telnyx_sign(TELNYX_KEY, now, hangup), drop=("telnyx-signature-ed25519",)))
    out.append(vector("missing_timestamp_header", "no telnyx-timestamp header", hangup, now,
                      telnyx_sign(TELNYX_KEY, now, hangup), drop=("telnyx-timestamp",)))

    for v in out:
        v["sdk_accepts"], v["sdk_says"] = telnyx_sdk(v)
    return {
        "provider": "telnyx",
        "generator": "scripts/sdk-vectors.py",
        "sdk": {
            "package": "telnyx",
            "version": metadata.version("telnyx"),
            "verifier": "telnyx.lib.webhook_verification.verify_webhook_signature(payload, headers, public_key)"
                        " and Telnyx(public_key=...).webhooks.unwrap(payload, headers=headers), at `now`",
            "dependencies": versions("pynacl"),
        },
        "vectors": out,
    }


# --------------------------------------------------------------------------- Vonage

VONAGE_URL = "https://hooks.example.com/webhooks/telephony/vonage/events"
VONAGE_SECRET = "cH3kWq9Zr2Lx7Nv4Tb8Yd1Fs6Gj0Mp5A"  # a made-up 32-character signature secret
VONAGE_OTHER_SECRET = "Zq0Lp7Xv2Nc9Rb4Tm6Ws1Hd8Kf3Gj5Ya"


class _FrozenDatetime(datetime.datetime):
    now_ts = 0

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(cls.now_ts, tz)


def vonage_sdk(vector):
    """vonage-jwt's verdict at the vector's `now`: (accepts, what it said)."""
    token = vector["headers"]["authorization"].removeprefix("Bearer ")
    _FrozenDatetime.now_ts = vector["now"]
    with mock.patch("jwt.api_jwt.datetime", _FrozenDatetime):
        try:
            ok = vonage_jwt.verify_signature(token, vector["secret"])
            return ok is True, f"verify_signature returned {ok!r}"
        except vonage_jwt.VonageVerifyJwtError as e:
            return False, f"VonageVerifyJwtError: {e}"


def vonage_vectors():
    now = VONAGE_NOW
    completed = fixture("vonage_completed.json")

    def claims(body, iat=now, **extra):
        c = {"iat": iat, "jti": "8b3e9a4c-2f1d-4e6b-9c7a-5d0f1e2a3b4c", "iss": "Vonage",
             "payload_hash": hashlib.sha256(body.encode("utf-8")).hexdigest(),
             "api_key": "a1b2c3d4", "application_id": "aaaaaaaa-0000-4000-8000-000000000001"}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def token(c, secret=VONAGE_SECRET, alg="HS256"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)  # HS512 wants 64 bytes
            return jwt.encode(c, secret, algorithm=alg)

    def vector(name, description, body, tok, fixture_name=None):
        v = {"name": name, "description": description}
        if fixture_name:
            v["fixture"] = fixture_name
        v.update({"now": now, "url": VONAGE_URL,
                  "headers": {"content-type": "application/json", "authorization": f"Bearer {tok}"},
                  "body": body, "secret": VONAGE_SECRET})
        return v

    out = []
    for name in ["vonage_started.json", "vonage_answered.json", "vonage_completed.json"]:
        body = fixture(name)
        out.append(vector(f"valid_{name.removeprefix('vonage_').removesuffix('.json')}",
                          "iat now, payload_hash of the body, signed with the secret", body, token(claims(body)),
                          fixture_name=name))
    out.append(vector("valid_iat_at_window_edge", "iat exactly 300 s before now", completed,
                      token(claims(completed, iat=now - TOLERANCE))))
    tampered = completed.replace('"completed"', '"answered"')
    assert tampered != completed
    out.append(vector("tampered_body", "status changed after signing; the JWT itself is intact", tampered,
                      token(claims(completed))))
    out.append(vector("wrong_secret", "signed with another secret", completed,
                      token(claims(completed), secret=VONAGE_OTHER_SECRET)))
    out.append(vector("missing_iat", "no iat claim at all", completed, token(claims(completed, iat=None))))
    out.append(vector("stale_iat", "iat an hour before now", completed, token(claims(completed, iat=now - 3600))))
    out.append(vector("iat_60s_ahead", "iat 60 s after now (sender clock ahead)", completed,
                      token(claims(completed, iat=now + 60))))
    out.append(vector("iat_301s_ahead", "iat 301 s after now", completed, token(claims(completed, iat=now + 301))))
    out.append(vector("missing_payload_hash", "no payload_hash claim", completed,
                      token(claims(completed, payload_hash=None))))
    out.append(vector("hs512_with_the_secret", "right secret, HS512 instead of HS256", completed,
                      token(claims(completed), alg="HS512")))
    out.append(vector("valid_with_exp", "exp 15 min after now, as Vonage's own tokens have", completed,
                      token(claims(completed, exp=now + 900))))
    out.append(vector("expired_exp", "exp 10 min before now", completed, token(claims(completed, exp=now - 600))))
    out.append(vector("future_nbf", "nbf 10 min after now", completed, token(claims(completed, nbf=now + 600))))

    for v in out:
        v["sdk_accepts"], v["sdk_says"] = vonage_sdk(v)
        token_claims = jwt.decode(v["headers"]["authorization"].removeprefix("Bearer "),
                                  options={"verify_signature": False})
        digest = hashlib.sha256(v["body"].encode("utf-8")).hexdigest()
        v["payload_hash_matches"] = token_claims.get("payload_hash") == digest
    return {
        "provider": "vonage",
        "generator": "scripts/sdk-vectors.py",
        "sdk": {
            "package": "vonage-jwt",
            "version": metadata.version("vonage-jwt"),
            "verifier": "vonage_jwt.verify_signature(token, signature_secret), at `now`; it checks the HS256"
                        " signature and PyJWT's default claims only, not payload_hash (recorded separately as"
                        " payload_hash_matches: lower-case hex SHA-256 of the body, per Vonage's docs)",
            "dependencies": versions("pyjwt"),
        },
        "vectors": out,
    }


PLIVO_URL = "https://hooks.example.com/webhooks/telephony/plivo/events?call_id=c-1"
PLIVO_TOKEN = "callhook-sdk-vectors-plivo-auth-token"
PLIVO_NONCE = "05429567804466091622"


def plivo_sign(body, token=PLIVO_TOKEN, nonce=PLIVO_NONCE, url=PLIVO_URL):
    """The signature Plivo sends, computed with plivo-python's own V3 routines."""
    from urllib.parse import parse_qsl
    params = dict(parse_qsl(body, keep_blank_values=True))
    base = construct_post_url(url, params).decode("utf-8")
    return get_signature_v3(token.encode("utf-8"), base, nonce.encode("utf-8")).decode("ascii")


def plivo_vectors():
    from urllib.parse import parse_qsl
    answered = fixture("plivo_answered.form")
    good = plivo_sign(answered)
    bad = plivo_sign(answered, token="some-other-token")

    def vector(name, description, body, signature, nonce=PLIVO_NONCE):
        v = {"name": name, "description": description, "now": VONAGE_NOW, "url": PLIVO_URL,
             "headers": {"content-type": "application/x-www-form-urlencoded",
                         "x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": nonce},
             "body": body, "auth_token": PLIVO_TOKEN}
        params = dict(parse_qsl(body, keep_blank_values=True))
        v["sdk_accepts"] = bool(validate_v3_signature("POST", PLIVO_URL, nonce, PLIVO_TOKEN, signature, params))
        v["sdk_says"] = f"validate_v3_signature returned {v['sdk_accepts']}"
        return v

    tampered = answered.replace("CallStatus=in-progress", "CallStatus=completed")
    assert tampered != answered
    return {
        "provider": "plivo",
        "generator": "scripts/sdk-vectors.py",
        "sdk": {
            "package": "plivo",
            "version": metadata.version("plivo"),
            "verifier": "plivo.utils.signature_v3.validate_v3_signature('POST', url, nonce, auth_token,"
                        " header, params); signatures made with its construct_post_url and get_signature_v3",
        },
        "vectors": [
            vector("valid", "one signature over the URL, sorted POST params and nonce", answered, good),
            vector("two_signatures", "another key's signature, then the right one: `bad,good`", answered,
                   f"{bad},{good}"),
            vector("two_signatures_with_space", "`bad, good`: a space after the comma", answered, f"{bad}, {good}"),
            vector("wrong_token", "signed with another auth token", answered, bad),
            vector("tampered_body", "CallStatus changed after signing", tampered, good),
            vector("wrong_nonce", "the nonce header is not the one signed", answered, good,
                   nonce="05429567804466091623"),
        ],
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, doc in [("telnyx.json", telnyx_vectors()), ("vonage.json", vonage_vectors()),
                      ("plivo.json", plivo_vectors())]:
        (OUT / name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{OUT / name}:")
        for v in doc["vectors"]:
            print(f"  {v['name']:40} sdk_accepts={str(v['sdk_accepts']):5}  {v['sdk_says']}")


if __name__ == "__main__":
    main()
