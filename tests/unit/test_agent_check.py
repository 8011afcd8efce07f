import argparse

from bot.cli import agent as agent_cli

SMALL_AGENT = """\
name: Test shop
greeting: Hello, how can I help?
intents:
  opening_hours:
    description: know our opening hours
    examples:
      - what are your opening hours
      - when are you open
      - what time do you open
      - what time do you close
      - are you open on saturday
      - are you open on sunday
    response: We're open nine to five.
  location:
    description: know where we are
    examples:
      - where are you located
      - what is your address
      - how do I find the shop
      - which street are you on
      - where is the store
      - can you give me directions
    response: We're on Main Street.
  prices:
    description: know our prices
    examples:
      - how much does it cost
      - what time do you open
    response: It depends.
"""


def run(*argv):
    parser = argparse.ArgumentParser()
    agent_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", "check", *argv])
    return args.func(args)


def test_check_warns_about_thin_and_duplicated_intents(tmp_path, capsys):
    path = tmp_path / "agent.yaml"
    path.write_text(SMALL_AGENT)
    assert run(str(path), "--folds", "2") == 0
    out = capsys.readouterr().out
    assert "intent 'prices' has 2 example(s)" in out
    assert "near-duplicate examples" in out and "what time do you open" in out
    assert "estimated on held-out examples" in out


def test_invalid_agent_file_exits_2_naming_the_problem(tmp_path, capsys):
    path = tmp_path / "agent.yaml"
    path.write_text(SMALL_AGENT.replace("greeting:", "greeting_typo:"))
    assert run(str(path)) == 2
    assert "agent.yaml" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path, capsys):
    assert run(str(tmp_path / "nope.yaml")) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_agent_group_is_registered():
    from bot.cli import COMMAND_GROUPS

    assert "agent" in COMMAND_GROUPS
