"""Tasks on the real benchmark files: splits, prompts, extraction, scoring, pairs, errors."""

from __future__ import annotations

import copy
import json
import random
import re

import pytest

from xsteer.tasks import TASKS, Example, Prompt, Task, load_task
from xsteer.tasks.competition_math import boxed_contents, last_boxed

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] | trim }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def read_jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def all_examples(task):
    return [e for s in ("train", "validation", "test") for e in task.split(s)]


@pytest.fixture(scope="module")
def gsm8k(data_dir):
    return load_task("gsm8k", data_dir=data_dir)


@pytest.fixture(scope="module")
def arc(data_dir):
    return load_task("arc-challenge", data_dir=data_dir)


@pytest.fixture(scope="module")
def arc_gen(data_dir):
    return load_task("arc-challenge", data_dir=data_dir, mode="generate", k_shot=3)


@pytest.fixture(scope="module")
def math500(data_dir):
    return load_task("math500", data_dir=data_dir)


@pytest.fixture(scope="module")
def math_task(data_dir):
    return load_task("math", data_dir=data_dir)


@pytest.fixture(scope="module")
def arith():
    return load_task("arith", mode="generate")


@pytest.fixture(scope="module")
def chat_tokenizer(tiny_llama):
    tok = copy.deepcopy(tiny_llama.tokenizer)
    assert not tok.chat_template
    tok.chat_template = CHAT_TEMPLATE
    return tok


# ---------------------------------------------------------------------------------------- GSM8K


def test_gsm8k_gold_solutions_parse_to_gold_number(gsm8k, data_dir):
    rows = read_jsonl(data_dir / "gsm8k" / "train.jsonl")[:200]
    by_id = {e.id: e for e in all_examples(gsm8k)}
    for i, row in enumerate(rows):
        gold = float(row["answer"].split("####")[-1].strip().replace(",", ""))
        example = by_id[f"gsm8k/train/{i}"]
        assert float(gsm8k.extract(row["answer"])) == gold  # the raw "#### N" file format
        assert float(example.answer) == gold
        assert example.solution.endswith(f"\n#### The final answer is: {example.answer}")
        assert "<<" not in example.solution
        assert gsm8k.is_correct(gsm8k.extract(example.solution), example)


@pytest.mark.parametrize(
    "output, expected",
    [
        ("She has 3 + 4 = 7.\n#### The final answer is: 1,234", "1234"),
        ("The final answer is: $1,000.", "1000"),
        ("It drops 7 degrees.\nThe final answer is: -7 degrees", "-7"),
        ("#### 18.0", "18"),
        ("#### The final answer is: 2.50 dollars per cup, I think", "2.5"),
        ("The final answer is: **42**.\nQuestion: Tom has 99 apples", "42"),
        ("So 3 + 4 = 7 apples. Then 7 * 2 = 14.", "14"),  # no answer line: last number
        ("The final answer is:\nthirty, so 30", "30"),  # nothing after the marker on its line
        ("I am not sure about this one.", None),
    ],
)
def test_numeric_extraction_of_malformed_outputs(gsm8k, output, expected):
    assert gsm8k.extract(output) == expected


def test_numeric_correctness_normalises_numbers(gsm8k):
    example = Example(id="x", question="q", answer="1000")
    assert gsm8k.is_correct("1,000", example)
    assert gsm8k.is_correct("1000.0", example)
    assert not gsm8k.is_correct("1001", example)
    assert not gsm8k.is_correct(None, example)
    assert not gsm8k.is_correct("many", example)


def test_gsm8k_splits_are_deterministic_disjoint_and_complete(gsm8k, data_dir):
    n_train = len(read_jsonl(data_dir / "gsm8k" / "train.jsonl"))
    n_test = len(read_jsonl(data_dir / "gsm8k" / "test.jsonl"))
    train, val, test = (gsm8k.split(s) for s in ("train", "validation", "test"))
    assert len(val) == 200 and len(train) + len(val) == n_train and len(test) == n_test
    ids = [{e.id for e in s} for s in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert not {e.question for e in train + val} & {e.question for e in test}

    again = load_task("gsm8k", data_dir=data_dir)
    assert [e.id for e in again.split("validation")] == [e.id for e in val]
    assert [e.id for e in again.shots] == [e.id for e in gsm8k.shots]
    other = load_task("gsm8k", data_dir=data_dir, seed=1, n_validation=50)
    assert len(other.split("validation")) == 50
    assert {e.id for e in other.split("validation")} - ids[1]


def test_plain_prompt_prefix_is_shared_and_holds_the_shots(gsm8k):
    examples = gsm8k.split("test")[:3]
    prompts = [gsm8k.prompt(e) for e in examples]
    assert len({p.prefix for p in prompts}) == 1
    for p, e in zip(prompts, examples):
        assert p.text == p.prefix + p.suffix and not p.chat
        assert p.suffix == f"Question: {e.question}\nAnswer:"
    prefix = prompts[0].prefix
    assert prefix.startswith(gsm8k.instruction) and "#### The final answer is: <number>" in prefix
    assert prefix.count("\nAnswer: ") == 5
    train_ids = {e.id for e in gsm8k.split("train")}
    for shot in gsm8k.shots:
        assert shot.id in train_ids
        assert f"Question: {shot.question}\nAnswer: {shot.solution}\n\n" in prefix


def test_stop_string_ends_a_plain_few_shot_continuation(gsm8k):
    output = "2 * 3 = 6.\n#### The final answer is: 6\n\nQuestion: Next one?\nAnswer: 8"
    cut = min(output.find(s) for s in gsm8k.stop_strings() if s in output)
    assert gsm8k.extract(output[:cut]) == "6"


@pytest.mark.parametrize("name", ["gsm8k", "arith"])
def test_numeric_pair_texts_negative_has_a_wrong_final_answer(name, gsm8k, arith):
    task = {"gsm8k": gsm8k, "arith": arith}[name]
    rng = random.Random(0)
    for example in task.split("train")[:100]:
        pos, neg = task.pair_texts(example, rng)
        question = f"Question: {example.question}\nAnswer: "
        assert pos.startswith(question) and neg.startswith(question)
        assert task.extract(pos) == example.answer
        assert task.extract(neg) is not None and not task.is_correct(task.extract(neg), example)
        # only the final step and the answer line change
        assert pos.split("\n")[:-2] == neg.split("\n")[:-2]


# ------------------------------------------------------------------------------------------ ARC


def test_arc_labels_map_to_letters_including_numeric_records(arc, data_dir):
    rows = read_jsonl(data_dir / "arc" / "ARC-Challenge-Test.jsonl")
    by_id = {e.id: e for e in arc.split("test")}
    numeric = 0
    for row in rows:
        example = by_id[row["id"]]
        original = {c["label"]: c["text"] for c in row["question"]["choices"]}
        numeric += all(label.isdigit() for label in original)
        assert [label for label, _ in example.choices] == list("ABCDE"[: len(original)])
        assert dict(example.choices)[example.answer] == original[row["answerKey"]].strip()
        assert example.meta["original_labels"] == tuple(original)
    assert numeric == 22  # 21 records labelled 1-4 and one labelled 1-3


def test_arc_loglik_prompt_and_continuations(arc, data_dir):
    example = next(e for e in arc.split("test") if len(e.choices) == 5)
    assert arc.mode == "loglik" and arc.max_new_tokens == 0
    assert arc.prompt(example).suffix == f"Question: {example.question}\nAnswer:"
    assert arc.continuations(example) == [" " + text for _, text in example.choices]
    zero = load_task("arc-easy", data_dir=data_dir, k_shot=0)
    first = zero.split("test")[0]
    assert zero.prompt(first) == Prompt("", f"Question: {first.question}\nAnswer:")


@pytest.mark.parametrize(
    "output, expected",
    [
        ("[B]", "B"),
        ("The correct choice is [C], not [A].", "C"),
        ("The answer is D because plants need light.", "D"),
        ("Answer: (A)", "A"),
        ("I pick (B) here.", "B"),
        ("C. Planetary days will become shorter.", "C"),
        ("E", "E"),
        ("A planet spins faster.", None),
        ("I don't know.", None),
    ],
)
def test_arc_choice_extraction(arc_gen, output, expected):
    assert arc_gen.extract(output) == expected


def test_arc_generate_mode_prompt_scoring_and_pairs(arc_gen):
    rng = random.Random(0)
    for example in arc_gen.split("validation")[:30]:
        suffix = arc_gen.prompt(example).suffix
        for label, text in example.choices:
            assert f"\n({label}) {text}" in suffix
        assert arc_gen.is_correct(arc_gen.extract(f"[{example.answer}]"), example)
        pos, neg = arc_gen.pair_texts(example, rng)
        assert arc_gen.extract(pos.split("Answer:")[-1]) == example.answer
        wrong = arc_gen.extract(neg.split("Answer:")[-1])
        assert wrong in dict(example.choices) and not arc_gen.is_correct(wrong, example)
    assert "[B]" in arc_gen.stop_strings()


def test_arc_loglik_pairs_use_choice_texts(arc):
    rng = random.Random(1)
    for example in arc.split("train")[:30]:
        pos, neg = arc.pair_texts(example, rng)
        texts = dict(example.choices)
        assert pos.endswith(" " + texts[example.answer])
        assert any(neg.endswith(" " + t) for k, t in texts.items() if k != example.answer)


# ----------------------------------------------------------------------------------------- MATH


def test_math500_gold_boxed_answers_match_the_answer_field(math500, data_dir):
    rows = read_jsonl(data_dir / "math" / "math500_test.jsonl")
    test = math500.split("test")
    assert [e.question for e in test] == [r["problem"].strip() for r in rows]
    for row, example in zip(rows, test):
        assert math500.extract(row["solution"]) == row["answer"].strip()
    for example in test[:100]:
        assert math500.is_correct(math500.extract(example.solution), example)


def test_boxed_contents_reproduce_the_all_boxed_field(data_dir):
    for row in read_jsonl(data_dir / "math" / "test_prm800k_style.jsonl"):
        assert boxed_contents(row["solution"]) == row["all_boxed"]


@pytest.mark.parametrize(
    "output, expected",
    [
        ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{3}, finally \\boxed{ 4 }", "4"),
        ("\\fbox{5}", "5"),
        ("the answer is \\boxed{\\frac{1}{2}", None),  # unbalanced: generation cut off
        ("the answer is 7", None),
    ],
)
def test_last_boxed(output, expected):
    assert last_boxed(output) == expected


def test_math_equivalent_forms_accepted_and_wrong_rejected(math500):
    half = Example(id="h", question="q", answer="\\frac12", meta={"accepted": ("\\frac12",)})
    for same in ("0.5", "\\dfrac{1}{2}", "\\frac{1}{2}", "1/2"):
        assert math500.is_correct(same, half), same
    for other in ("0.6", "2", "\\frac{1}{3}"):
        assert not math500.is_correct(other, half), other
    fracs = [e for e in math500.split("test") if "\\frac" in e.answer][:25]
    assert len(fracs) == 25
    for example in fracs:  # a different string, so math-verify decides
        assert math500.is_correct(example.answer.replace("\\frac", "\\dfrac"), example)
    ints = [e for e in math500.split("test") if re.fullmatch(r"\d+", e.answer)][:25]
    for example in ints:
        assert not math500.is_correct(str(int(example.answer) + 1), example)


def test_math_several_boxed_answers_are_accepted(math_task):
    by_id = {e.id: e for e in all_examples(math_task)}
    both = by_id["math/414"]  # "the answers are -2 and 1"
    assert math_task.is_correct("1, -2", both) and math_task.is_correct("-2", both)
    assert not math_task.is_correct("5", both)
    either = by_id["math/333"]  # "-3; note: 3 is also accepted"
    assert math_task.is_correct("-3", either) and math_task.is_correct("3", either)


def test_math_splits_hold_out_shots_from_the_test_file(math_task, math500, data_dir):
    train, val, test = (math_task.split(s) for s in ("train", "validation", "test"))
    assert len(train) == 5 and len(val) == 200
    assert len(train) + len(val) + len(test) == len(
        read_jsonl(data_dir / "math" / "test_prm800k_style.jsonl")
    )
    qs = [{e.question for e in s} for s in (train, val, test)]
    assert not (qs[0] & qs[1] or qs[0] & qs[2] or qs[1] & qs[2])
    in500 = {e.question for e in math500.split("test")}
    assert len(in500) == 500
    assert not in500 & {e.question for s in ("train", "validation") for e in math500.split(s)}
    again = load_task("math", data_dir=data_dir)
    assert [e.id for e in again.split("train")] == [e.id for e in train]
    assert [e.id for e in again.split("validation")] == [e.id for e in val]


def test_math_pair_texts_negative_has_a_wrong_boxed_answer(math500):
    rng = random.Random(0)
    for example in math500.split("test")[:25]:
        pos, neg = math500.pair_texts(example, rng)
        assert math500.is_correct(math500.extract(pos), example)
        assert not math500.is_correct(math500.extract(neg), example)
        assert pos.rsplit("\\boxed", 1)[0] == neg.rsplit("\\boxed", 1)[0]


# ---------------------------------------------------------------------------------------- arith


def test_arith_problems_are_correct_and_splits_disjoint(arith):
    for example in all_examples(arith):
        for a, op, b, c in re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", example.solution):
            assert {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op] == int(c)
        direct = re.fullmatch(r"What is (\d+) (\+|-|times) (\d+)\?", example.question)
        if direct:
            a, op, b = int(direct[1]), direct[2], int(direct[3])
            assert int(example.answer) == {"+": a + b, "-": a - b, "times": a * b}[op]
        assert arith.extract(example.solution) == example.answer
    qs = [{e.question for e in arith.split(s)} for s in ("train", "validation", "test")]
    assert [len(q) for q in qs] == [1000, 200, 500]
    assert not (qs[0] & qs[1] or qs[0] & qs[2] or qs[1] & qs[2])
    again, other = load_task("arith", mode="generate"), load_task("arith", mode="generate", seed=1, n_test=10)
    assert [e.question for e in again.split("test")] == [e.question for e in arith.split("test")]
    assert len(other.split("test")) == 10 and other.split("test")[0] != arith.split("test")[0]


# ------------------------------------------------------------------------------ chat templates


def test_chat_template_prompt_has_a_shared_prefix(data_dir, chat_tokenizer):
    task = load_task("gsm8k", data_dir=data_dir, k_shot=2)
    s1, s2 = task.shots
    examples = task.split("test")[:3]
    prompts = [task.prompt(e, chat_tokenizer) for e in examples]
    assert len({p.prefix for p in prompts}) == 1 and all(p.chat for p in prompts)
    for p, e in zip(prompts, examples):
        expected = (
            f"<bos><|user|>\n{task.instruction}\n\n{s1.question}<|end|>\n"
            f"<|assistant|>\n{s1.solution}<|end|>\n"
            f"<|user|>\n{s2.question}<|end|>\n<|assistant|>\n{s2.solution}<|end|>\n"
            f"<|user|>\n{e.question}<|end|>\n<|assistant|>\n"
        )
        assert p.text == expected
        assert p.suffix == f"{e.question}<|end|>\n<|assistant|>\n"


def test_chat_template_zero_shot_keeps_the_instruction_in_the_prefix(data_dir, chat_tokenizer):
    task = load_task("arith", k_shot=0, mode="generate")
    example = task.split("test")[0]
    p = task.prompt(example, chat_tokenizer)
    assert p.prefix == f"<bos><|user|>\n{task.instruction}\n\n"
    assert p.suffix == f"{example.question}<|end|>\n<|assistant|>\n"


def test_tokenizer_without_template_gives_the_plain_prompt(gsm8k, tiny_llama):
    example = gsm8k.split("test")[0]
    assert gsm8k.prompt(example, tiny_llama.tokenizer) == gsm8k.prompt(example)


def test_template_that_rewrites_content_is_rejected(arith, chat_tokenizer):
    tok = copy.deepcopy(chat_tokenizer)
    tok.chat_template = CHAT_TEMPLATE.replace("| trim", "| upper")
    with pytest.raises(ValueError, match="altered the question"):
        arith.prompt(arith.split("test")[0], tok)


# ----------------------------------------------------------------------------------- errors


def test_registry_and_protocol(arith):
    assert set(TASKS) == {"gsm8k", "math", "math500", "arc-challenge", "arc-easy", "arith"}
    assert isinstance(arith, Task)


def test_unknown_task_lists_the_names():
    with pytest.raises(ValueError) as err:
        load_task("gsm9k")
    assert all(name in str(err.value) for name in TASKS)


def test_missing_data_folder_says_where_and_how(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        load_task("gsm8k", data_dir=missing)
    for part in (str(missing), "data_dir=", "XSTEER_DATA_DIR", "--data-dir"):
        assert part in str(err.value)
    monkeypatch.delenv("XSTEER_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="XSTEER_DATA_DIR is not set"):
        load_task("arc-easy")
    monkeypatch.setenv("XSTEER_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        load_task("math")
    assert str(tmp_path / "math" / "test_prm800k_style.jsonl") in str(err.value)


def test_k_shot_larger_than_training_split(data_dir):
    with pytest.raises(ValueError, match="k_shot=6 .* 5 examples.*n_fewshot"):
        load_task("math500", data_dir=data_dir, k_shot=6)
    assert len(load_task("math500", data_dir=data_dir, k_shot=6, n_fewshot=6).shots) == 6
    with pytest.raises(ValueError, match="k_shot=11"):
        load_task("arith", k_shot=11, n_train=10)


def test_bad_options_are_rejected(data_dir, arith):
    with pytest.raises(ValueError, match="mode='loglik'"):
        load_task("gsm8k", data_dir=data_dir, mode="loglik")
    with pytest.raises(ValueError, match="source"):
        load_task("gsm8k", data_dir=data_dir, source="s3")
    with pytest.raises(ValueError, match="empty"):
        load_task("arith", n_validation=0).split("validation")
    with pytest.raises(ValueError, match="Unknown split"):
        arith.split("dev")
    with pytest.raises(ValueError, match="no choices"):
        arith.continuations(arith.split("test")[0])
