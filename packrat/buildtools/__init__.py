"""What Packrat knows of the build tools' own formats and key schemes.

``cas``    content-addressed keys (Bazel's ``cas/``): how to recognise one
           however it is spelled, and whether a body's digest matches it
``reapi``  the REAPI ``ActionResult`` and ``Tree`` messages (protocol-buffer
           wire format, read by hand): the output blobs an action result names
``turborepo``  Turborepo's remote cache API: team namespaces, the artifact
           headers kept, usage events, the query, its error shape

Pure functions, no I/O: the front end applies them around its object path
(``frontend.buildcache``, ``frontend.turborepo``).
"""
