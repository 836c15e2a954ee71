"""``python -m cnncourse.grading serve``: the judge (see `judge.main`)."""

from cnncourse.grading.judge import main

if __name__ == "__main__":
    main()
