"""glueperf: measure how well, how fast and how leanly a text classifier runs on GLUE data.

The Snakemake rules call thin scripts in ``scripts/``; everything they do lives in the modules of
this package so that it can be imported and tested without Snakemake.
"""

# A run in which more than this share of rows (%) was cut at max_length is flagged: a warning in
# its log and on the console, and a note under every plot. The model then judged only the start
# of those sentences, and its accuracy is not the accuracy on the dataset as it is.
TRUNCATED_WARN_PCT = 1.0


class GlueperfError(Exception):
    """An error in the user's input (data, model or config), with a message meant for people.

    Scripts turn it into one clear line on stderr and a non-zero exit instead of a traceback.
    """


# The label of a row without one (GLUE's test splits hide theirs): never scored.
NO_LABEL = -1


def one_line(error: BaseException) -> str:
    """An error's message on one line (transformers' and pyarrow's messages span several)."""
    return " ".join(str(error).split()) or type(error).__name__
