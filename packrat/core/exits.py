"""Exit statuses of the server roles: what the supervisor and supervisord act on."""

IN_USE = 1  # the cache root is held by another instance
CONFIG = 2  # a bad configuration: restarting cannot help
CANNOT_LISTEN = 3  # the HTTP address is taken or does not resolve
BROKEN_ROOT = 4  # the cache root's directories cannot be used
# A child that exits with one of these makes ``packrat serve`` stop the group
# rather than restart it.  (Not 1: that is also any uncaught exception.)
FATAL = (CONFIG, CANNOT_LISTEN, BROKEN_ROOT)
