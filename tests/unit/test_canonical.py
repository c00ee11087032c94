"""Webhook bodies: what JSON.stringify(JSON.parse(body)) gives back, byte for byte (checked in node)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

from contracts.events import TaskFinished
from services.notifier.canonical import dumps
from services.notifier.signing import payload_for

TRICKY = {
    "best_score": 1.0, "half": 0.5, "tiny": 1e-7, "small": 0.000001, "huge": 1e21, "big": 1e20, "neg_zero": -0.0,
    "safe": 2**53 - 1, "unsafe": 2**60 + 1, "beyond_double": 10**400, "nan": float("nan"), "inf": float("-inf"),
    "text": "é ü 中文 😀 \u2028\u2029 \x00\x1f \x7f \"quoted\" back\\slash /slash", "10": "index keys", "2": "first",
    "-1": "not an index", "01": "not an index", "4294967295": "not an index", "nested": {"b": [1.5, {"1": 0.1 + 0.2}]},
    "empty": [{}, []], "flags": [True, False, None],
}


def test_numbers_and_strings_follow_ecmascript():
    assert dumps({"a": 1.0, "b": 0.5, "c": 1e-7, "d": 2**60 + 1, "e": 1e21, "f": -0.0}) == \
        b'{"a":1,"b":0.5,"c":1e-7,"d":1152921504606847000,"e":1e+21,"f":0}'
    assert dumps("é\n\x01\u2028") == '"é\\n\\u0001\u2028"'.encode()
    assert dumps([float("nan"), 10**400]) == b"[null,null]"


def test_keys_keep_the_order_a_javascript_object_gives_them():
    assert dumps({"b": 1, "a": 2, "10": 3, "2": 4, "-1": 5}) == b'{"2":4,"10":3,"b":1,"a":2,"-1":5}'


def test_the_payload_keeps_its_documented_field_order():
    done = TaskFinished(uid="u", tool="template", status="done", result_files=["r"], result_data={"best_score": 1.0})
    assert payload_for(done) == b'{"uid":"u","status":"done","tool":"template","result_files":["r"],"result_data":{"best_score":1}}'


def test_node_gives_the_same_bytes_back():
    assert shutil.which("node"), "node is needed to check bodies the way the original's Express receiver reads them"
    rnd = random.Random(8785)
    samples = [TRICKY] + [
        [rnd.uniform(-1e6, 1e6), rnd.random() * 10 ** rnd.randint(-30, 30), rnd.getrandbits(70), rnd.random()]
        for _ in range(500)
    ]
    bodies = [dumps(s).decode() for s in samples]
    script = (
        "const lines = require('fs').readFileSync(0, 'utf8').split('\\n').filter(Boolean);"
        "const bad = lines.map(l => JSON.parse(l)).filter(b => JSON.stringify(JSON.parse(b)) !== b);"
        "console.log(JSON.stringify({checked: lines.length, bad}));"
    )
    run = subprocess.run(["node", "-e", script], input="\n".join(json.dumps(b) for b in bodies),
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"checked": len(bodies), "bad": []}
