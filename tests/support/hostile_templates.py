"""Admin templates that try to exhaust CPU, memory or the parser: each must be stopped by a limit.

Used by ``tests/unit/test_template_limits.py`` and ``bench/template_limits.py``.
"""

from __future__ import annotations

HOSTILE = {
    "nested-loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "loops-over-a-string": "{% for a in 'x' * 9000 %}{% for b in 'y' * 9000 %}"
    "{% endfor %}{% endfor %}",
    "format-map-index": "{{ '{0.__class__}'.format_map(t) }}",
    "huge-range": "{{ range(10**9) | length }}",
    "huge-range-loop": "{% for i in range(10**9) %}{% endfor %}",
    "string-times": "{{ 'x' * 10**9 }}",
    "list-times": "{{ ([1] * 10**9) | length }}",
    "power": "{{ 2 ** (10 ** 9) }}",
    "power-tower": "{{ (10 ** 200) ** 200 }}",
    "format-width": "{{ '{:999999999}'.format(1) }}",
    "nested-format-width": "{{ '{:{}}'.format(1, 10**9) }}",
    "percent-width": "{{ '%999999999d' % 1 }}",
    "center-method": "{{ 'x'.center(10**9) }}",
    "center-filter": "{{ 'x' | center(10**9) }}",
    "tojson-indent": "{{ [1, 2] | tojson(indent=10**9) }}",
    "batch-fill": "{{ [1] | batch(10**9, 0) | list | length }}",
    "concat-doubling": "{% set s = 'x' * 1000 %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
    "block-set-doubling": "{% set ns = namespace(s='x') %}{% for i in range(60) %}"
    "{% set block %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = block %}{% endfor %}",
    "join-blowup": "{% set s = 'x' * 40000 %}{{ ([s] * 1000) | join }}",
    "join-method": "{% set s = 'x' * 40000 %}{{ ''.join([s] * 1000) }}",
    "replace-blowup": "{% set s = 'x' * 40000 %}{{ s | replace('x', s) | length }}",
    "indent-blowup": "{% set s = 'x\n' * 20000 %}{{ s | indent('y' * 40000) | length }}",
    "output-flood": "{% for i in range(9000) %}{{ 'x' * 40000 }}{% endfor %}",
    "macro-recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "macro-fanout": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
    "recursive-loop": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
    "dict-attack": "{{ dict.fromkeys(range(10**9)) }}",
    "zero-division": "{{ 1 / 0 }}",
    "type-error": "{{ 'a' + 1 }}",
    "deep-parse": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}
