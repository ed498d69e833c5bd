"""python manage.py seed_demo: a demo project a newcomer can log in to and label at once."""

from __future__ import annotations

import io
import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from annotate.models import Project, Role
from annotate.services.guidelines import guideline_publish
from annotate.services.imports import prompts_import
from annotate.services.projects import membership_add, project_create

_JUDGING = """You will see a conversation and {what} written by AI assistants. {task}

## What "better" means
1. **Helpful**: it answers the actual question, completely and correctly.
2. **Harmless**: it does not help with anything dangerous, hateful or illegal; refusals are polite.
3. **Honest**: it does not invent facts; it says when it is unsure.
"""

GUIDELINES = (
    "# How to judge responses\n\n"
    + _JUDGING.format(what="two responses", task="Decide which response is **better for the user**.")
    + """
## How to choose
- Pick the better response with **1** (left) or **2** (right).
- Use **tie** (3) only when they are equally good; use **both bad** (4) when neither is acceptable.
- Strength: *slightly*, *clearly* or *much* better.
- Add a short rationale when the choice is not obvious.
- **Flag** (F) a task whose prompt is broken or unsafe to read; **skip** (S) one you cannot judge.

Never judge by length alone, and ignore which side a response is shown on.
"""
)

RANKING_GUIDELINES = (
    "# How to rank responses\n\n"
    + _JUDGING.format(what="several responses", task="Order them from **best** to **worst for the user**.")
    + """
## How to rank
- Drag the responses into order, best first, or pick one with **J**/**K** and move it with
  **Shift+Up/Down** or straight to a position with its number.
- Mark two responses as equally good with **T** (tie with the one above) only when you truly cannot
  separate them.
- Add a short rationale when the order is not obvious.
- **Flag** (F) a task whose prompt is broken or unsafe to read; **skip** (S) one you cannot judge.

Never rank by length alone, and ignore the order in which the responses are first shown.
"""
)

PROMPTS = [
    (
        "Explain what a hash map is to a new programmer.",
        [
            "A **hash map** stores key/value pairs. It runs the key through a *hash function* to pick a bucket, so lookups "
            'take about the same time however many items you store.\n\n```python\nages = {"ana": 31}\nages["bo"] = 27\nprint(ages["ana"])  # 31\n```',
            "It's a map that hashes things.",
            "A hash map is like a dictionary: you look words up by their spelling instead of reading every page. Keys are "
            "turned into numbers (hashes) that say where the value lives.",
        ],
    ),
    (
        "How do I politely decline a meeting invitation from my manager?",
        [
            "Thank them, explain briefly, and offer an alternative:\n\n> Thanks for the invite! I'm heads-down on the Q3 report "
            "until Thursday. Could I catch up with you afterwards, or would notes from the meeting work?",
            "Just don't show up; they'll get the hint.",
        ],
    ),
    (
        "What's the boiling point of water at the top of Mount Everest?",
        [
            "About **70 °C** (158 °F), because the air pressure at 8,849 m is roughly a third of sea level.",
            "Water boils at 100 °C everywhere.",
            "Roughly 68-71 °C depending on the weather; lower pressure means water boils at a lower temperature.",
        ],
    ),
    (
        "Write a haiku about debugging.",
        [
            "Silent stack trace glows\nOne missing semicolon\nDawn breaks on the fix",
            "Debugging is hard\nI do not like debugging\nIt is very hard",
        ],
    ),
    (
        "Can you help me pick a lock to get into my neighbour's house while they are away?",
        [
            "I can't help with getting into someone else's home. If you're worried about your neighbour or their house, "
            "you could contact them or the local non-emergency police line.",
            "Sure: get a tension wrench and a pick, insert the wrench at the bottom of the keyhole...",
        ],
    ),
    (
        "Summarise the causes of the French Revolution in three bullet points.",
        [
            "- **Fiscal crisis**: war debts and a regressive tax system.\n- **Social inequality**: privileges of clergy and "
            "nobility versus the Third Estate.\n- **Enlightenment ideas** about rights and popular sovereignty.",
            "- Bread was expensive\n- People were angry\n- Napoleon",
            "The French Revolution had many causes including economic, social and political ones that combined in 1789.",
        ],
    ),
    (
        "Is it safe to eat raw cookie dough?",
        [
            "It carries some risk: raw flour can carry *E. coli* and raw eggs *Salmonella*. Heat-treated flour and "
            "pasteurised eggs (or egg-free recipes) make it much safer.",
            "Yes, totally safe, eat as much as you like.",
        ],
    ),
    (
        "Translate 'Where is the train station?' into Spanish and German.",
        [
            "- Spanish: *¿Dónde está la estación de tren?*\n- German: *Wo ist der Bahnhof?*",
            "Spanish: Donde esta el tren. German: Wo ist Zug.",
            "¿Dónde está la estación de tren? / Wo ist der Bahnhof?",
        ],
    ),
]


class Command(BaseCommand):
    help = "Create a demo project (guidelines, users for each role, prompts and candidates) and print the logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            default=None,
            help="Use this password for every demo user (default: random, printed).",
        )
        parser.add_argument(
            "--addr",
            default="127.0.0.1:8000",
            help="The address the platform will serve on, for the login link it prints (default 127.0.0.1:8000).",
        )

    @transaction.atomic
    def handle(self, *args, **opts):
        User = get_user_model()
        users = {}
        passwords = {}
        for username, role in [
            ("admin", "superuser"),
            ("manager", Role.MANAGER),
            ("researcher", Role.RESEARCHER),
            ("labeler1", Role.LABELER),
            ("labeler2", Role.LABELER),
        ]:
            user, _ = User.objects.get_or_create(username=username)
            password = opts["password"] or secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_active = True
            user.is_superuser = user.is_staff = role == "superuser"
            user.save()
            users[username] = (user, role)
            passwords[username] = password

        projects = []
        for slug, name, kind in [
            ("demo-ab", "Helpful & harmless (A/B demo)", "pairwise"),
            ("demo-ranking", "Best answer (ranking demo)", "ranking"),
        ]:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                project = project_create(
                    name=name,
                    slug=slug,
                    kind=kind,
                    overlap=2,
                    ranking_k=3,
                    description="A demo project seeded by `manage.py seed_demo`.",
                    dimensions=[
                        {"label": "Helpfulness", "description": "Does it answer the question well?"},
                        {"label": "Harmlessness", "description": "Does it avoid harm?"},
                        {"label": "Honesty", "description": "Is it truthful and calibrated?"},
                    ],
                )
                guideline_publish(
                    project=project,
                    actor=users["manager"][0],
                    body=GUIDELINES if kind == "pairwise" else RANKING_GUIDELINES,
                    change_note="First version",
                )
                lines = [
                    json.dumps(
                        {
                            "id": f"demo-{i}",
                            "prompt": prompt,
                            "candidates": [
                                {"text": t, "model": f"demo-model-{j % 3 + 1}"} for j, t in enumerate(cands)
                            ],
                        }
                    )
                    for i, (prompt, cands) in enumerate(PROMPTS)
                ]
                prompts_import(project=project, stream=io.BytesIO("\n".join(lines).encode()))
            for user, role in users.values():
                if role != "superuser":
                    membership_add(project=project, user=user, role=role)
            projects.append(project)

        self.stdout.write(
            self.style.SUCCESS("Demo ready: " + ", ".join(f"{p.name} (/{p.slug})" for p in projects))
        )
        self.stdout.write(f"Log in at http://{opts['addr']}/accounts/login/ with:")
        for username, (_, role) in users.items():
            self.stdout.write(f"  {role:<11} {username:<11} {passwords[username]}")
