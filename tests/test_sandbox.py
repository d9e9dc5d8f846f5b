"""Template bombs: support staff edit templates, so a loop that never ends, a text of a billion
characters or a render that takes minutes is a template problem with its file and line — found
within seconds by `templates check`, and never a hung or bloated `notifier serve`."""

from __future__ import annotations

import resource
import time

import pytest

from notifier.sandbox import BoundedEnvironment, TemplateTooBig
from tests.test_templates_cli import broken_templates

BOMBS = {
    "nested loops": "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
    "a billion characters": "{{ 'x' * 1000000000 }}",
    "a list of a billion": "{% for c in [1] * 1000000000 %}{% endfor %}",
    "a number of a billion digits": "{{ 10 ** 1000000000 }}",
    "loops that run for minutes": "{% for a in [1,2,3,4,5,6,7,8,9,10] * 10 %}{% for b in [1,2,3,4,5,6,7,8,9,10] * 10 %}"
    "{% for c in [1,2,3,4,5,6,7,8,9,10] * 10 %}{% for d in [1,2,3,4,5,6,7,8,9,10] * 10 %}{% for e in "
    "[1,2,3,4,5,6,7,8,9,10] * 10 %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    "output of tens of megabytes": "{% for a in range(50000) %}{{ 'x' * 90000 }}{% endfor %}",
}


@pytest.mark.parametrize("bomb", list(BOMBS), ids=list(BOMBS))
def test_templates_check_reports_a_bomb_within_seconds_with_its_file_and_line(cli, tmp_path, database_url, bomb) -> None:
    config = broken_templates(tmp_path, database_url, "email/status/ru/body.txt", 2, BOMBS[bomb])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    result = cli("templates", "check", config=config)
    took = time.monotonic() - started
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "custom-templates/email/status/ru/body.txt:2: " in result.stderr, result.stderr
    assert took < 20  # each render stops at its bound (or its 2 s deadline)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 200  # nothing of a billion characters was ever built


def test_the_bounds_leave_ordinary_templates_alone() -> None:
    env = BoundedEnvironment()
    template = env.from_string("{% for i in range(3) %}{{ i }}{% endfor %} {{ 'ab' * 3 }} {{ 2 ** 10 }}")
    assert env.run(template, {}) == "012 ababab 1024"
    many = env.from_string("{% for i in range(60000) %}{% endfor %}{% for i in range(30000) %}{% endfor %}ok")
    assert env.run(many, {}) == "ok"  # 90,000 steps in all: within the budget, and again next time
    assert env.run(many, {}) == "ok"
    with pytest.raises(TemplateTooBig, match="loop"):
        env.run(env.from_string("{% for i in range(60000) %}{% for j in range(2) %}{% endfor %}{% endfor %}"), {})
