"""Deploy to boards over ssh: copy an artifact and this project, bench there, fetch results, report here.

targets.py (boards, inventories) -> bundle.py (what is sent, with digests) ->
ssh.py (the OpenSSH client) + scripts.py (the shell run on a board) ->
job.py (one board's steps) -> fleet.py (boards in parallel, status, report).
"""
