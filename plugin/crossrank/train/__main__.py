"""``python -m crossrank.train``: the same as ``crossrank train``."""

import typer

from crossrank.train.command import train_command

if __name__ == "__main__":
    typer.run(train_command)
