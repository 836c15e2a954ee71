"""``python -m cnncourse.grading serve | digest QUESTION NAME JSON_VALUE``: see `judge.main`."""

from cnncourse.grading.judge import main

if __name__ == "__main__":
    main()
