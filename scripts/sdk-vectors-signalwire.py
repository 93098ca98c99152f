#!/usr/bin/env python3
"""Signed SignalWire webhook vectors, judged by SignalWire's own SDK code.

Writes tests/fixtures/sdk_vectors/signalwire.json; tests/sdk_vectors.rs replays every
vector through callhook. Kept apart from scripts/sdk-vectors.py because the
`signalwire` package pins twilio==6.54.0 and PyJWT==1.7.1, which the Vonage vectors'
PyJWT cannot share a virtualenv with.

Two official SDKs are asked, and they disagree on a repeated form field:

  Python  signalwire (PyPI) signalwire.request_validator.RequestValidator(signing_key)
          .validate(url, params, signature): a raw JSON body (str) is tried as a hex
          HMAC-SHA1 over URL + body, with and without the default port, and otherwise
          parsed and handed to twilio-python 6.54's RequestValidator, as is a form
          (given as a multidict.MultiDict, as the SDK's own tests do). twilio 6.54 signs
          `sorted(params.items())`: a repeated field's values sorted, not de-duplicated.
  Node    @signalwire/compatibility-api RestClient.validateRequest(token, header, url, params):
          a repeated field arrives as an array (as Express's urlencoded parser gives
          it) and is signed in arrival order; @signalwire/web-api validateRequest(key,
          header, url, rawBody) for JSON: hex HMAC-SHA1 over `${url}${rawBody}` with the
          URL exactly as given, then the compatibility check on the parsed body.

Signatures are made with the SDKs' own signing functions: Python's
`build_signature` (JSON) and `build_signature_with_compatibility` (sorted form), Node's
`getExpectedTwilioSignature` (arrival-order form; not exported, so loaded from the
package's lib/webhooks/webhooks.js, the source of the bundled RestClient.validateRequest). Each vector records both verdicts.

Run it from the repository root (needs PyPI and npm; the output is deterministic):

    python3 -m venv /tmp/swvenv && /tmp/swvenv/bin/pip install signalwire
    mkdir -p /tmp/swnpm && (cd /tmp/swnpm && npm install @signalwire/compatibility-api @signalwire/web-api)
    SIGNALWIRE_NODE_MODULES=/tmp/swnpm/node_modules /tmp/swvenv/bin/python scripts/sdk-vectors-signalwire.py

then review the diff of tests/fixtures/sdk_vectors/ and run `cargo test --test sdk_vectors`.
"""

import json
import os
import pathlib
import subprocess
import urllib.parse
from importlib import metadata

from multidict import MultiDict
from signalwire.request_validator import RequestValidator

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "sdk_vectors"
NODE_MODULES = pathlib.Path(os.environ.get("SIGNALWIRE_NODE_MODULES", "/tmp/swnpm/node_modules"))

URL = "https://hooks.example.com/webhooks/telephony/signalwire/events?call_id=c-1"
URL_443 = "https://hooks.example.com:443/webhooks/telephony/signalwire/events?call_id=c-1"
KEY = "PSK_callhookSdkVectorsSignalWire1"  # a made-up project signing key
OTHER_KEY = "PSK_someOtherProjectSigningKey9"
NOW = 1795514520  # 2026-11-24T10:02:00Z; SignalWire's signatures carry no time

# The Node half: reads [{kind, key, header, url, body, pairs}] and prints, per item,
# the SDK's verdict and (for forms) its arrival-order signature.
NODE = r"""
const path = require('path');
const { RestClient } = require('@signalwire/compatibility-api');
// Not exported; the same code as the bundle's, from the package's own lib/ (by path,
// past the package's `exports`).
const { getExpectedTwilioSignature } = require(
  path.join(process.env.NODE_PATH, '@signalwire/compatibility-api/lib/webhooks/webhooks.js'));
const webApi = require('@signalwire/web-api');
const items = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const params = (pairs) => {
  const p = {};
  for (const [k, v] of pairs) {
    if (!(k in p)) p[k] = v;
    else if (Array.isArray(p[k])) p[k].push(v);
    else p[k] = [p[k], v];
  }
  return p;
};
const out = items.map((it) => {
  const r = {};
  if (it.kind === 'form') {
    r.arrival_signature = getExpectedTwilioSignature(it.key, it.url, params(it.pairs));
    r.accepts = RestClient.validateRequest(it.key, it.header, it.url, params(it.pairs), true);
  } else {
    try { r.accepts = webApi.validateRequest(it.key, it.header, it.url, it.body); }
    catch (e) { r.accepts = false; r.error = `${e.name}: ${e.message}`; }
  }
  return r;
});
process.stdout.write(JSON.stringify(out));
"""


def fixture(name):
    # The files end in a newline for the editor's sake; the provider's body does not.
    return (FIXTURES / name).read_text(encoding="utf-8").rstrip("\n")


def pairs_of(form):
    return urllib.parse.parse_qsl(form, keep_blank_values=True)


def node(items):
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
    done = subprocess.run(["node", "-e", NODE], input=json.dumps(items), capture_output=True, text=True, env=env,
                          check=True)
    return json.loads(done.stdout)


def node_version(package):
    return json.loads((NODE_MODULES / package / "package.json").read_text())["version"]


def python_sdk(v):
    """The Python SDK's verdict: (accepts, what it said)."""
    validator = RequestValidator(v["key"])
    params = MultiDict(pairs_of(v["body"])) if v["kind"] == "form" else v["body"]
    try:
        ok = validator.validate(v["url"], params, v["headers"]["x-signalwire-signature"])
        return ok is True, f"validate returned {ok!r}"
    except Exception as e:  # noqa: BLE001 - an exception is the SDK's refusal too
        return False, f"validate raised {type(e).__name__}: {e}"


def vectors():
    out = []

    def vector(name, description, kind, body, signature, key=KEY, url=URL, fixture_name=None):
        content_type = "application/x-www-form-urlencoded" if kind == "form" else "application/json"
        v = {"name": name, "description": description}
        if fixture_name:
            v["fixture"] = fixture_name
        v.update({"kind": kind, "now": NOW, "url": url,
                  "headers": {"content-type": content_type, "x-signalwire-signature": signature},
                  "body": body, "key": key})
        out.append(v)

    def py_form_signature(body, key=KEY, url=URL):
        return RequestValidator(key).build_signature_with_compatibility(url, MultiDict(pairs_of(body)))

    def arrival_signature(body, key=KEY, url=URL):
        [r] = node([{"kind": "form", "key": key, "header": "", "url": url, "body": body, "pairs": pairs_of(body)}])
        return r["arrival_signature"]

    def hex_signature(body, key=KEY, url=URL):
        return RequestValidator(key).build_signature(url, body)

    # Forms: Twilio's compatibility scheme.
    completed = fixture("signalwire_completed.form")
    vector("form_completed", "the completed fixture, no repeated field, signed by the Python SDK", "form",
           completed, py_form_signature(completed), fixture_name="signalwire_completed.form")
    repeated = fixture("signalwire_ringing.form") + "&Tag=zeta&Tag=alpha"
    vector("form_repeated_sorted", "Tag=zeta&Tag=alpha, signed by the Python SDK (values sorted: alpha, zeta)",
           "form", repeated, py_form_signature(repeated))
    vector("form_repeated_arrival_order", "Tag=zeta&Tag=alpha, signed by the Node SDK (arrival order: zeta, alpha)",
           "form", repeated, arrival_signature(repeated))
    swapped = fixture("signalwire_ringing.form") + "&Tag=alpha&Tag=zeta"
    vector("form_repeated_swapped_after_signing",
           "signed in arrival order zeta, alpha; delivered as alpha, zeta", "form", swapped,
           arrival_signature(repeated))
    changed = repeated.replace("Tag=alpha", "Tag=alphb")
    assert changed != repeated
    vector("form_repeated_value_changed", "sorted signature, one Tag value changed after signing", "form", changed,
           py_form_signature(repeated))
    vector("form_wrong_key", "signed with another project's signing key", "form", repeated,
           py_form_signature(repeated, key=OTHER_KEY))

    # JSON: hex HMAC-SHA1 over URL + raw body.
    for name in ["signalwire_relay_answered.json", "signalwire_relay_ended.json", "signalwire_swml_created.json"]:
        body = fixture(name)
        vector(f"json_{name.removeprefix('signalwire_').removesuffix('.json')}",
               "signed by the Python SDK's build_signature", "json", body, hex_signature(body), fixture_name=name)
    ended = fixture("signalwire_relay_ended.json")
    vector("json_signed_with_default_port", "signed over the URL with :443, delivered without", "json", ended,
           hex_signature(ended, url=URL_443))
    tampered = ended.replace('"noAnswer"', '"hangup"')
    assert tampered != ended
    vector("json_tampered_body", "end_reason changed after signing", "json", tampered, hex_signature(ended))
    vector("json_wrong_key", "signed with another project's signing key", "json", ended,
           hex_signature(ended, key=OTHER_KEY))
    vector("json_uppercase_hex", "the right signature in upper-case hex", "json", ended,
           hex_signature(ended).upper())
    vector("json_signed_without_url", "hex HMAC-SHA1 over the body alone", "json", ended,
           hex_signature(ended, url=""))
    vector("json_other_url", "signed for another path", "json", ended,
           hex_signature(ended, url=URL.replace("/events", "/other")))
    flat = json.dumps({"CallSid": "8ad8f7b1-0d3f-4c5a-9a4c-6b7f0c1d2e3f", "CallStatus": "completed",
                       "AccountSid": "b3877c40-da60-4998-90ad-b792e98472af"}, separators=(",", ":"))
    vector("json_flat_signed_as_form", "a flat JSON body signed with Twilio's form scheme over its parsed fields",
           "json", flat, RequestValidator(KEY).build_signature_with_compatibility(URL, json.loads(flat)))
    # The SDKs' own published test vector (signalwire-python test_request_validator.py,
    # @signalwire/web-api validateRequest.test.ts).
    published = ('{"call":{"call_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","node_id":"fa3570ae-f8bd-42c2-83f4-'
                 '9950d906c91b@us-west","segment_id":"b5d63b2e-f75b-4dc8-b6d4-269b635f96c0","call_state":"created",'
                 '"direction":"inbound","type":"phone","from":"+12135877632","to":"+12089806814","from_number":'
                 '"+12135877632","to_number":"+12089806814","project_id":"4b7ae78a-d02e-4889-a63b-08b156d5916e",'
                 '"space_id":"62615f44-2a34-4235-b38b-76b5a1de6ef8"},"vars":{}}')
    vector("sdk_published_swml_vector", "the SDKs' own test vector", "json", published,
           "b18500437ebb010220ddd770cbe6fd531ea0ba0d", key="PSK_7TruNcSNTxp4zNrykMj4EPzF",
           url="https://81f2-2-45-18-191.ngrok-free.app/")

    verdicts = node([{"kind": v["kind"], "key": v["key"], "header": v["headers"]["x-signalwire-signature"],
                      "url": v["url"], "body": v["body"], "pairs": pairs_of(v["body"]) if v["kind"] == "form" else []}
                     for v in out])
    for v, n in zip(out, verdicts):
        v["sdk_accepts"], v["sdk_says"] = python_sdk(v)
        v["node_sdk_accepts"] = n["accepts"]
        v["node_sdk_says"] = n.get("error", f"validateRequest returned {n['accepts']!r}")
    return out


def main():
    doc = {
        "provider": "signalwire",
        "generator": "scripts/sdk-vectors-signalwire.py",
        "sdk": {
            "package": "signalwire",
            "version": metadata.version("signalwire"),
            "verifier": "signalwire.request_validator.RequestValidator(key).validate(url, params, signature);"
                        " a form as multidict.MultiDict in arrival order, a JSON body as the raw string",
            "dependencies": {"twilio": metadata.version("twilio"), "multidict": metadata.version("multidict")},
        },
        "node_sdk": {
            "packages": {p: node_version(p) for p in ["@signalwire/compatibility-api", "@signalwire/web-api"]},
            "verifier": "forms: compatibility-api RestClient.validateRequest(key, header, url, params) with a repeated field"
                        " as an array in arrival order; JSON: web-api validateRequest(key, header, url, rawBody)",
        },
        "vectors": vectors(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "signalwire.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for v in doc["vectors"]:
        print(f"{v['name']:40} python={v['sdk_accepts']!s:5} node={v['node_sdk_accepts']!s:5} {v['sdk_says']}")


if __name__ == "__main__":
    main()
