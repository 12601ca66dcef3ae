"""What Packrat knows of the build tools' own formats and key schemes.

``cas``    content-addressed keys (Bazel's ``cas/``): how to recognise one
           however it is spelled, and whether a body's digest matches it
``reapi``  the REAPI ``ActionResult`` and ``Tree`` messages (protocol-buffer
           wire format, read by hand): the output blobs an action result names

Pure functions, no I/O: the front end's object path applies them.
"""
