"""One libFuzzer process: `python -m linkstate.fuzz.worker TARGET (--structured|--bytes) -- LIBFUZZER-ARGS`.

Owns: instrumenting the target's code under test (atheris, before anything imports it), the custom mutator
that mixes the target's structure-aware mutator with libFuzzer's own byte mutations, and handing control to
libFuzzer, which never returns (it exits with its own status). The parent (linkstate.fuzz.engine) reads
libFuzzer's status lines from this process's stderr.
Invariants: nothing from proto or linkstate.core is imported before `atheris.instrument_imports`; mutator code
(linkstate.fuzz) is not instrumented, so coverage counts only the code under test.
May import: the standard library, atheris, linkstate.fuzz (the code under test through the target only).
"""

from __future__ import annotations

import random
import sys
from typing import Any

STRUCTURED_SHARE = 0.6  # of mutations drawn from the structure-aware mutator, when the target has one


def main(argv: list[str]) -> None:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    from linkstate.fuzz import targets

    name, mode, rest = argv[0], argv[1], argv[argv.index("--") + 1 :]
    with atheris.instrument_imports(include=list(targets.scope(name))):
        target = targets.load(name, structured=mode == "--structured")
    mutator = target.mutator

    def custom_mutator(data: bytes, max_size: int, seed: int) -> Any:
        rng = random.Random(seed)
        if mutator is not None and rng.random() < STRUCTURED_SHARE:
            out = mutator(data, max_size, rng)
            if out is not None:
                return out
        return atheris.Mutate(data, max_size)

    print(f"linkstate-fuzz: target {name}, structure-aware mutator {'on' if mutator else 'off'}", file=sys.stderr)
    extra: dict[str, Any] = {"custom_mutator": custom_mutator} if mutator is not None else {}
    atheris.Setup([sys.argv[0], *rest], target.check, **extra)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
