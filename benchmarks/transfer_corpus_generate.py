"""Generate the built-in anchor corpus (``xsteer/data/anchor_corpus.jsonl.gz``): texts the models
write themselves from topics × styles, greedy, with topic and style labels.

SmolLM2-135M-Instruct answers every (topic, style) request as a user turn of its chat template;
Gemma-3-270M (a base model, no chat template) continues a plain opening for a share of them. Run
once; the output is shipped with the package (about 500 texts):

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_corpus_generate \
        [--tokens 40] [--smol-styles 4] [--gemma-styles 1] [--out xsteer/data/anchor_corpus.jsonl.gz]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from xsteer.fidelity.dose import OpenPrompts

TOPICS = (
    "music", "sport", "medicine", "space", "cooking",
    "the weather", "a city street", "a forest", "the ocean", "a mountain hike", "a farm", "a garden",
    "a train station", "an airport", "a school", "a university lecture", "a library", "a museum",
    "a hospital waiting room", "a supermarket", "a bakery", "a restaurant", "a coffee shop", "a wedding",
    "a birthday party", "a funeral", "a job interview", "an office meeting", "a factory", "a construction site",
    "a police investigation", "a court case", "an election", "taxes", "the stock market", "a bank loan",
    "a startup company", "a smartphone", "a laptop computer", "computer programming", "artificial intelligence",
    "the internet", "social media", "a video game", "a film", "a television show", "a novel", "poetry",
    "painting", "photography", "dance", "theatre", "fashion", "a haircut", "a car repair", "a bicycle",
    "a road trip", "a camping trip", "a beach holiday", "winter snow", "a thunderstorm", "a drought",
    "a flood", "an earthquake", "climate change", "recycling", "electricity", "a power plant", "chemistry",
    "physics", "biology", "mathematics", "history", "ancient Rome", "the Middle Ages", "a war", "a peace treaty",
    "religion", "philosophy", "psychology", "friendship", "a family dinner", "a new baby", "old age",
    "a pet dog", "a cat", "birds", "insects", "a zoo", "a fishing boat", "a river", "a desert", "a volcano",
    "gardening tools", "furniture", "cleaning the house", "moving to a new home", "a lost wallet",
    "a broken phone", "learning a language", "a math exam", "a science fair",
)

STYLES = {
    "story": "Write a very short story about {t}.",
    "news": "Write a short news report about {t}.",
    "review": "Write a short review of something related to {t}.",
    "diary": "Write a diary entry about {t}.",
    "dialogue": "Write a short dialogue between two people about {t}.",
    "howto": "Give step-by-step instructions related to {t}.",
    "encyclopedia": "Write an encyclopedia paragraph about {t}.",
    "question": "Ask three curious questions about {t}.",
}

GEMMA_OPENINGS = {
    "story": "Here is a very short story about {t}.\n\n",
    "news": "News report: {t}\n\n",
    "encyclopedia": "{T}\n\nFrom the encyclopedia:",
}


def _generate(model, prompts: list[str], tokens: int, chat: bool, batch_size: int) -> list[str]:
    from xsteer.evaluate import Evaluator

    task = OpenPrompts(prompts, max_new_tokens=tokens, chat=chat)
    ev = Evaluator(model, task, scale="relative", batch_size=batch_size, progress=False)
    return [r.output for r in ev.sweep(task.examples, "test", "baseline", None, [0.0])[0.0]]


def _jobs(styles: dict, model: str) -> list[dict]:
    return [{"prompt": tpl.format(t=t, T=t[:1].upper() + t[1:]), "topic": t, "style": s, "model": model}
            for s, tpl in styles.items() for t in TOPICS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--smol-styles", type=int, default=4, help="how many of STYLES SmolLM2 answers")
    ap.add_argument("--gemma-styles", type=int, default=1, help="how many of GEMMA_OPENINGS Gemma continues")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--partial", default="/work/cache/anchor_corpus.partial.jsonl", help="resumable progress")
    ap.add_argument("--out", default="xsteer/data/anchor_corpus.jsonl.gz")
    args = ap.parse_args()
    from xsteer.models import load_model

    partial = Path(args.partial)
    done = [json.loads(line) for line in partial.read_text().splitlines()] if partial.exists() else []
    seen = {(r["model"], r["prompt"]) for r in done}
    plan = [("smollm2-135m", True, _jobs(dict(list(STYLES.items())[: args.smol_styles]), "smollm2-135m")),
            ("gemma-3-270m", False, _jobs(dict(list(GEMMA_OPENINGS.items())[: args.gemma_styles]), "gemma-3-270m"))]
    t0 = time.perf_counter()
    for name, chat, jobs in plan:
        jobs = [j for j in jobs if (name, j["prompt"]) not in seen]
        if not jobs:
            continue
        model = load_model(name)
        for start in range(0, len(jobs), 4 * args.batch_size):  # written as it goes: a killed run resumes
            chunk = jobs[start : start + 4 * args.batch_size]
            outs = _generate(model, [j["prompt"] for j in chunk], args.tokens, chat, args.batch_size)
            with partial.open("a", encoding="utf-8") as f:
                for j, o in zip(chunk, outs):
                    f.write(json.dumps({"text": o.strip(), **j}, ensure_ascii=False) + "\n")
            print(json.dumps({"model": name, "done": start + len(chunk), "of": len(jobs),
                              "s": round(time.perf_counter() - t0)}), flush=True)
        del model
    rows = [json.loads(line) for line in partial.read_text().splitlines()]
    rows = [r for r in rows if len(r["text"].split()) >= 5]
    with gzip.open(args.out, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(json.dumps({"texts": len(rows), "s": time.perf_counter() - t0, "out": args.out}))


if __name__ == "__main__":
    main()
