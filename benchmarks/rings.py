"""The ring detector's precision and recall on a generated program (benchmarks/ring_program.py).

    python -m benchmarks.rings [--members 10000] [--seed 1]

It feeds the detector's input (rewards/rings.py Member) directly rather than driving the bot on Redis: what it
measures is the judgement, and 10,000 members through webhooks would measure the plumbing for minutes on a
shared machine. How Redis becomes that input is tested on the real program in tests/test_rings.py.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

from benchmarks.ring_program import generate
from rewards.rings import Settings, detect, flagged, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = Settings(mode="flag")
    program = generate(args.members, args.seed)
    began = time.perf_counter()
    groups = detect(program.members.values(), settings)
    took = time.perf_counter() - began
    result = measure(groups, set(program.planted), settings)
    caught = Counter(program.planted[uid] for g in flagged(groups, settings) for uid in g.members
                     if uid in program.planted)
    print(f"members {len(program.members)}, planted in rings {len(program.planted)}, "
          f"groups {len(groups)}, flagged {len(flagged(groups, settings))} ({took:.2f} s)")
    print(f"precision {result.precision:.3f}  recall {result.recall:.3f}  "
          f"(tp {result.true_positives}, fp {result.false_positives}, fn {result.false_negatives})")
    for shape, total in sorted(Counter(program.planted.values()).items()):
        print(f"  {shape:7} {caught[shape]}/{total}")
    honest = Counter(program.honest_kind.get(uid, "plain") for uid in result.flagged_honest)
    print("  honest flagged: " + (", ".join(f"{k} {n}" for k, n in sorted(honest.items())) or "none"))


if __name__ == "__main__":
    main()
