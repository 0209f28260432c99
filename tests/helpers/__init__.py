"""What the test packages share: factories, waiters, fixture machinery.

Test modules import helpers from here, never from another test module.
"""
