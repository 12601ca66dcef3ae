# Varnish in front of Packrat: store objects and revalidate every hit.
#
# Packrat answers objects with "Cache-Control: public, no-cache" while
# [frontend] cache_max_age = 0 (the default): any cache may keep them but
# must check each use with the origin.  Varnish's built-in VCL never stores
# a no-cache answer, so without this file every request goes through whole.
# Here such an answer is kept, stale after a microsecond (Varnish revalidates
# only objects that had a TTL: 0 is never revalidated, and VCL writes no
# smaller duration), for `keep` more: each hit becomes a
# conditional GET (If-None-Match with the stored ETag), which Packrat answers
# 304 without the bytes, and an object overwritten in Packrat is fetched
# anew at once.  Ranges are served from the stored copy.
#
# With cache_max_age = N > 0 the built-in VCL already stores objects for N
# seconds (a changed object may then be served stale for up to N seconds).
# Answers to requests with credentials ("private", Authorization) are never
# stored: Varnish's built-in VCL passes them.
#
# Tested with Varnish 7.1 by tests/test_varnish.py (docs/build-tools.md).
vcl 4.1;

backend packrat {
    .host = "127.0.0.1";
    .port = "5050";
}

sub vcl_backend_response {
    if (beresp.http.Cache-Control ~ "(^|,)\s*public\b" && beresp.http.Cache-Control ~ "\bno-cache\b") {
        set beresp.ttl = 0.001ms;
        set beresp.grace = 0s;
        set beresp.keep = 7d;
        return (deliver);
    }
}
