"""Check candidate facts on a model and write the ones it gets right as the shipped fact set.

Usage: python scripts/check_facts.py [--model gemma-3-270m] [--write] [--out PATH]

A fact passes when the model's top-1 next token after the prompt is the first token of the
object (objects carry their leading space, e.g. " Paris"), ahead of the runner-up by at least
``--min-margin`` in probability, so that it stays right under small numerical differences
between machines. With ``--write`` the passing facts are written to
``src/circuitscope/tasks/data/facts.jsonl`` (a header line with the format version, then one
fact a line), atomically: temporary file, then rename.

The candidates below are well-known facts written for circuitscope (no third-party text).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

# (relation, template with {} for the subject, subject, object)
CANDIDATES: list[tuple[str, str, str, str]] = [
    ("located_in_city", "{} is located in the city of", "The Eiffel Tower", " Paris"),
    ("located_in_city", "{} is located in the city of", "The Colosseum", " Rome"),
    ("located_in_city", "{} is located in the city of", "The Statue of Liberty", " New"),
    ("located_in_city", "{} is located in the city of", "Big Ben", " London"),
    ("located_in_city", "{} is located in the city of", "The Brandenburg Gate", " Berlin"),
    ("located_in_city", "{} is located in the city of", "The Sagrada Familia", " Barcelona"),
    ("located_in_city", "{} is located in the city of", "The Kremlin", " Moscow"),
    ("located_in_city", "{} is located in the city of", "The Golden Gate Bridge", " San"),
    ("located_in_city", "{} is located in the city of", "The Space Needle", " Seattle"),
    ("located_in_city", "{} is located in the city of", "The Louvre", " Paris"),
    ("located_in_city", "{} is located in the city of", "The Acropolis", " Athens"),
    ("located_in_city", "{} is located in the city of", "The Forbidden City", " Beijing"),
    ("located_in_city", "{} is located in the city of", "The Taj Mahal", " Agra"),
    ("located_in_city", "{} is located in the city of", "The Sydney Opera House", " Sydney"),
    ("located_in_city", "{} is located in the city of", "The Leaning Tower of Pisa", " Pisa"),
    ("located_in_city", "{} is located in the city of", "The Vatican", " Rome"),
    ("located_in_city", "{} is located in the city of", "Times Square", " New"),
    ("located_in_city", "{} is located in the city of", "The Hollywood sign", " Los"),
    ("located_in_country", "{} is located in the country of", "Mount Fuji", " Japan"),
    ("located_in_country", "{} is located in the country of", "The Great Wall", " China"),
    ("located_in_country", "{} is located in the country of", "Machu Picchu", " Peru"),
    ("located_in_country", "{} is located in the country of", "The Taj Mahal", " India"),
    ("located_in_country", "{} is located in the country of", "Stonehenge", " England"),
    ("located_in_country", "{} is located in the country of", "The Parthenon", " Greece"),
    ("located_in_country", "{} is located in the country of", "Angkor Wat", " Cambodia"),
    ("located_in_country", "{} is located in the country of", "The Kremlin", " Russia"),
    ("capital", "The capital of {} is", "France", " Paris"),
    ("capital", "The capital of {} is", "Germany", " Berlin"),
    ("capital", "The capital of {} is", "Italy", " Rome"),
    ("capital", "The capital of {} is", "Spain", " Madrid"),
    ("capital", "The capital of {} is", "Japan", " Tokyo"),
    ("capital", "The capital of {} is", "Russia", " Moscow"),
    ("capital", "The capital of {} is", "Egypt", " Cairo"),
    ("capital", "The capital of {} is", "Canada", " Ottawa"),
    ("capital", "The capital of {} is", "Australia", " Canberra"),
    ("capital", "The capital of {} is", "China", " Beijing"),
    ("capital", "The capital of {} is", "Greece", " Athens"),
    ("capital", "The capital of {} is", "Portugal", " Lisbon"),
    ("capital", "The capital of {} is", "Austria", " Vienna"),
    ("capital", "The capital of {} is", "Poland", " Warsaw"),
    ("capital", "The capital of {} is", "Norway", " Oslo"),
    ("capital", "The capital of {} is", "Sweden", " Stockholm"),
    ("capital", "The capital of {} is", "Kenya", " Nairobi"),
    ("capital", "The capital of {} is", "Thailand", " Bangkok"),
    ("capital", "The capital of {} is", "Ireland", " Dublin"),
    ("capital", "The capital of {} is", "Argentina", " Buenos"),
    ("capital_city", "{} is the capital city of", "Paris", " France"),
    ("capital_city", "{} is the capital city of", "Tokyo", " Japan"),
    ("capital_city", "{} is the capital city of", "Madrid", " Spain"),
    ("capital_city", "{} is the capital city of", "Berlin", " Germany"),
    ("capital_city", "{} is the capital city of", "Cairo", " Egypt"),
    ("language", "The official language of {} is", "France", " French"),
    ("language", "The official language of {} is", "Germany", " German"),
    ("language", "The official language of {} is", "Brazil", " Portuguese"),
    ("language", "The official language of {} is", "Italy", " Italian"),
    ("language", "The official language of {} is", "Japan", " Japanese"),
    ("language", "The official language of {} is", "Mexico", " Spanish"),
    ("language", "The official language of {} is", "Russia", " Russian"),
    ("language", "The official language of {} is", "China", " Mandarin"),
    ("currency", "The currency of {} is the", "Japan", " yen"),
    ("currency", "The currency of {} is the", "the United Kingdom", " pound"),
    ("currency", "The currency of {} is the", "India", " rupee"),
    ("currency", "The currency of {} is the", "Mexico", " peso"),
    ("currency", "The currency of {} is the", "Russia", " ruble"),
    ("company_ceo_product", "{} is best known for making the", "Apple", " iPhone"),
    ("company_hq", "The headquarters of {} are in the city of", "Microsoft", " Redmond"),
    ("company_hq", "The headquarters of {} are in the city of", "Toyota", " Toyota"),
    ("company_country", "{} is a car company from", "Toyota", " Japan"),
    ("company_country", "{} is a car company from", "Volkswagen", " Germany"),
    ("company_country", "{} is a car company from", "Ferrari", " Italy"),
    ("company_country", "{} is a car company from", "Renault", " France"),
    ("company_country", "{} is a car company from", "Hyundai", " South"),
    ("creator", "{} was written by", "Romeo and Juliet", " William"),
    ("creator", "{} was written by", "Hamlet", " William"),
    ("creator", "{} was written by", "Harry Potter", " J"),
    ("creator", "{} was written by", "War and Peace", " Leo"),
    ("creator", "{} was painted by", "The Mona Lisa", " Leonardo"),
    ("creator", "{} was painted by", "The Starry Night", " Vincent"),
    ("creator", "{} was composed by", "The Magic Flute", " Wolfgang"),
    ("founder", "{} was founded by", "Microsoft", " Bill"),
    ("founder", "{} was founded by", "Apple", " Steve"),
    ("founder", "{} was founded by", "Facebook", " Mark"),
    ("founder", "{} was founded by", "Amazon", " Jeff"),
    ("profession", "{} was a famous", "Pablo Picasso", " painter"),
    ("profession", "{} was a famous", "Albert Einstein", " physicist"),
    ("profession", "{} was a famous", "Wolfgang Amadeus Mozart", " composer"),
    ("profession", "{} plays the sport of", "Lionel Messi", " football"),
    ("profession", "{} plays the sport of", "Roger Federer", " tennis"),
    ("profession", "{} plays the sport of", "Tiger Woods", " golf"),
    ("profession", "{} plays the sport of", "LeBron James", " basketball"),
    ("nationality", "{} was born in the country of", "Albert Einstein", " Germany"),
    ("nationality", "{} was born in the country of", "Napoleon Bonaparte", " France"),
    ("nationality", "{} was born in the country of", "Wolfgang Amadeus Mozart", " Austria"),
    ("continent", "{} is a country in the continent of", "Brazil", " South"),
    ("continent", "{} is a country in the continent of", "Kenya", " Africa"),
    ("continent", "{} is a country in the continent of", "Germany", " Europe"),
    ("continent", "{} is a country in the continent of", "Japan", " Asia"),
    ("continent", "{} is a country in the continent of", "Egypt", " Africa"),
    ("river", "The river that flows through {} is the", "London", " Thames"),
    ("river", "The river that flows through {} is the", "Paris", " Seine"),
    ("river", "The river that flows through {} is the", "Cairo", " Nile"),
    ("planet", "{} is the largest planet in the", "Jupiter", " solar"),
    ("element", "The chemical symbol of {} is", "gold", " Au"),
    ("element", "The chemical symbol of {} is", "iron", " Fe"),
    ("element", "The chemical symbol of {} is", "sodium", " Na"),
    ("religion", "The holy book of {} is the", "Islam", " Quran"),
    ("religion", "The holy book of {} is the", "Christianity", " Bible"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--write", action="store_true", help="write the passing facts to --out")
    parser.add_argument("--min-margin", type=float, default=0.02, help="p(object) - p(runner-up) required")
    parser.add_argument("--out", type=Path, default=Path("src/circuitscope/tasks/data/facts.jsonl"))
    args = parser.parse_args()

    import circuitscope as cs
    from circuitscope.tasks.facts import FACTS_FORMAT, FACTS_VERSION

    model = cs.load_model(args.model)
    passed: list[dict[str, str]] = []
    seen: set[str] = set()
    for relation, template, subject, obj in CANDIDATES:
        if "{}" not in template or not subject:
            continue
        prompt = template.format(subject)
        if prompt in seen:
            continue
        seen.add(prompt)
        expected = model.to_tokens(obj, prepend_bos=False)[0, 0].item()
        with torch.no_grad():
            probs = model(model.to_tokens(prompt))[0, -1].softmax(-1)
        best = probs.topk(2)
        top, margin = int(best.indices[0]), float(best.values[0] - best.values[1])
        ok = top == expected and margin >= args.min_margin
        got = model.to_string(top)
        print(f"{'ok ' if ok else 'BAD'} p={float(probs[expected]):.3f} margin={margin:.3f} {prompt!r} -> {got!r}")
        if ok:
            passed.append({"subject": subject, "relation": relation, "template": template, "object": obj})
    print(f"{len(passed)} of {len(seen)} candidate facts are predicted correctly by {args.model}", file=sys.stderr)
    if args.write:
        header = {"format": FACTS_FORMAT, "version": FACTS_VERSION, "checked_on": args.model}
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [header, *passed])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", suffix=".tmp", dir=args.out.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, args.out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
