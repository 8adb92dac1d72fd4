from cbns.cli import entry

entry()
