"""``python -m mdm_devtools generate ...``: the ``mdm-dev`` command without its script."""

from mdm_devtools.cli import main

main(prog_name="mdm-dev")
