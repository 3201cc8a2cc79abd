"""Who may write a partition's active segment, and when leadership moves on.

- leases.py: write fencing. A node appends to a segment only while it holds an
  unexpired lease for that segment's epoch, granted and renewed through Raft.
- rotation.py: when an active segment reaches its roll threshold, its leader
  proposes sealing it and opening the next one on another node.
"""
