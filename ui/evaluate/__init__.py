"""The Evaluate page's four tabs, one view module each (pages/evaluate.py lays them out).

run.py (start an evaluation, its progress), scoreboard.py (results, per question, judge), drill.py (the
update drill), report.py (the decision report); shared.py holds what more than one tab uses.
"""
