"""`--help` describes every option it shows."""
import argparse

from main import build_parser


def test_every_shown_option_has_a_description():
    p = build_parser()
    shown = [a for a in p._actions if a.help is not argparse.SUPPRESS and a.option_strings]
    missing = [a.option_strings[0] for a in shown if not a.help]
    assert len(shown) > 25 and missing == []


def test_options_with_a_value_say_their_default():
    p = build_parser()
    for a in p._actions:
        if a.help in (None, argparse.SUPPRESS) or not a.option_strings or a.nargs == 0:
            continue
        if a.default not in (None, "", False) and a.dest not in ("speed",):
            assert "default" in a.help, a.option_strings[0]
