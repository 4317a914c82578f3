from opsbus.cli.main import run

run()
