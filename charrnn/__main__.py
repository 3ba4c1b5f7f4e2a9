"""python -m charrnn: the same command line as `charrnn`."""

from charrnn.cli import main

if __name__ == "__main__":
    main(prog_name="charrnn")
