"""Schemathesis hooks for Weir's conformance run (tests/e2e/openapi_conformance.rs).

- Module uploads are `application/wasm`: generate bytes, some shaped like WebAssembly headers.
- Path parameters: half of the generated names are replaced with ones the test created (topic
  `t`, processor `p`, partition 0), so requests reach the handlers' logic instead of stopping
  at 404.
"""

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.media_type(
    "application/wasm",
    st.one_of(
        st.binary(max_size=512),
        st.just(b"\x00asm\x01\x00\x00\x00"),
        st.just(b"\x00asm\x0d\x00\x01\x00"),
        st.binary(max_size=64).map(lambda b: b"\x00asm\x0d\x00\x01\x00" + b),
    ),
)

KNOWN = {"topic": "t", "name": "p", "partition": 0}


@schemathesis.hook
def map_path_parameters(ctx, params):
    if not params:
        return params
    for key, known in KNOWN.items():
        value = params.get(key)
        if value is not None and hash(str(value)) % 2 == 0:
            params[key] = known
    return params
