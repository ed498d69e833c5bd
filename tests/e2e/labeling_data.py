"""Realistic conversations and responses for the browser tests (and their screenshots)."""

from __future__ import annotations

from annotate.models import Candidate, Prompt
from annotate.services.tasks import TaskSpec, tasks_bulk_create

CONVERSATION = [
    {"role": "system", "content": "You are a careful, concise programming assistant."},
    {"role": "user", "content": "How do I read a large CSV file in Python without running out of memory?"},
    {
        "role": "assistant",
        "content": "Read it in pieces instead of all at once. Do you use pandas, or only the standard library?",
    },
    {"role": "user", "content": "pandas. The file is about **40 GB** and I need the total of one column."},
]

RESPONSES = [
    (
        "Use `chunksize` so pandas yields one `DataFrame` at a time and keep a running total:\n\n"
        '```python\nimport pandas as pd\n\ntotal = 0\nfor chunk in pd.read_csv("big.csv", usecols=["amount"], chunksize=1_000_000):\n'
        '    total += chunk["amount"].sum()\nprint(total)\n```\n\n'
        "Two things keep memory flat:\n\n"
        "1. `usecols` parses only the column you need.\n"
        "2. `chunksize` bounds how many rows are in memory at once.\n\n"
        'If the column is numeric, pass `dtype={"amount": "float64"}` to skip type inference.'
    ),
    (
        'You can just load it with `pd.read_csv("big.csv")` and call `.sum()` on the column. '
        "Pandas is very efficient, so 40 GB should be fine on most laptops.\n\n"
        "> Tip: close other programs first to free up RAM."
    ),
    (
        "Stream it with the standard library; no pandas needed:\n\n"
        '```python\nimport csv\n\nwith open("big.csv", newline="") as f:\n'
        '    total = sum(float(row["amount"]) for row in csv.DictReader(f))\n```\n\n'
        "It is slower than pandas' C parser but uses almost no memory."
    ),
    (
        "Convert it to Parquet once, then query the column:\n\n"
        "| Step | Tool | Memory |\n|:--|:--|--:|\n| Convert | `pyarrow.csv.open_csv` | low |\n| Sum | `pyarrow.compute.sum` | low |\n\n"
        "This pays off if you will read the file more than once."
    ),
]


def make_tasks(project, *, count: int, per_task: int = 2, texts=None, conversation=None) -> list:
    """``count`` prompts, each with ``per_task`` responses, one task each (canonical slot order = list order)."""
    texts = list(texts or RESPONSES)
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(project=project, external_id=f"e2e-{i}", messages=conversation or CONVERSATION)
            for i in range(count)
        ]
    )
    specs = []
    for i, prompt in enumerate(prompts):
        cands = Candidate.objects.bulk_create(
            [
                Candidate(prompt=prompt, text=texts[(i + j) % len(texts)], model_name=f"secret-model-{j}")
                for j in range(per_task)
            ]
        )
        specs.append(TaskSpec(prompt_id=prompt.pk, candidate_ids=[c.pk for c in cands]))
    return tasks_bulk_create(project=project, specs=specs)


def make_task_with(project, texts: list[str], *, conversation=None, external_id: str = ""):
    """One prompt whose responses are exactly ``texts`` (canonical slot order = list order)."""
    prompt = Prompt.objects.create(
        project=project, external_id=external_id, messages=conversation or CONVERSATION
    )
    cands = Candidate.objects.bulk_create([Candidate(prompt=prompt, text=t) for t in texts])
    return tasks_bulk_create(
        project=project, specs=[TaskSpec(prompt_id=prompt.pk, candidate_ids=[c.pk for c in cands])]
    )[0]
