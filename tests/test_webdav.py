"""WebDAV over the keys (``packrat.frontend.webdav``), request by request, on a real server.

rclone and litmus run against it in test_rclone.py and test_litmus.py; this
module pins the answers themselves: properties of objects and collections,
``Depth: 1`` listings page after page, rights, and the methods refused.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
import requests

from packrat.coordinator.protocol import MAX_PAGE

D = "{DAV:}"
ALLPROP = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>'


def propfind(url: str, depth: str | None = "0", body: bytes = b"", **kw) -> requests.Response:
    headers = {"Depth": depth} if depth is not None else {}
    headers.update(kw.pop("headers", {}))
    return requests.request("PROPFIND", url, data=body, headers=headers, timeout=30, **kw)


def responses(reply: requests.Response) -> dict[str, dict[str, str | None]]:
    """href -> {property name: text} of the 200 propstats of a multistatus."""
    assert reply.status_code == 207, reply.text
    assert reply.headers["Content-Type"].startswith("application/xml")
    found = {}
    for response in ET.fromstring(reply.content).iter(f"{D}response"):
        props: dict[str, str | None] = {}
        for propstat in response.iter(f"{D}propstat"):
            if propstat.findtext(f"{D}status") == "HTTP/1.1 200 OK":
                for prop in propstat.find(f"{D}prop"):
                    collection = prop.find(f"{D}collection") is not None
                    props[prop.tag.removeprefix(D)] = "collection" if collection else prop.text
        found[response.findtext(f"{D}href")] = props
    return found


def test_an_object_and_the_collections_above_it(packrat_server):
    url = packrat_server.url
    body = b"hello webdav"
    for key in ("dav/a b&c.txt", "dav/été.txt", "dav/sub/file.txt"):
        assert requests.put(f"{url}/{key}", data=body, timeout=10).status_code == 200
    listed = responses(propfind(f"{url}/dav/", depth="1"))  # hrefs percent-encoded, XML-escaped
    assert list(listed) == ["/dav/", "/dav/a%20b&c.txt", "/dav/sub/", "/dav/%C3%A9t%C3%A9.txt"]
    assert listed["/dav/%C3%A9t%C3%A9.txt"]["displayname"] == "été.txt"

    (one,) = responses(propfind(f"{url}/dav/sub/file.txt", body=ALLPROP)).items()
    href, props = one
    assert href == "/dav/sub/file.txt"
    assert props["getcontentlength"] == str(len(body))
    assert props["getetag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert props["getcontenttype"] == "text/plain"
    assert props["getlastmodified"].endswith(" GMT")
    assert props["displayname"] == "file.txt" and props["resourcetype"] is None

    assert propfind(f"{url}/dav/sub/nothing").status_code == 404
    # Without a trailing slash, a name with keys below it is a collection.
    for path in ("/dav/sub", "/dav/sub/"):
        (props,) = responses(propfind(url + path)).values()
        assert props["resourcetype"] == "collection", path
    (props,) = responses(propfind(f"{url}/")).values()  # the root
    assert props["resourcetype"] == "collection"

    asked = (
        b'<propfind xmlns="DAV:"><prop><getetag/><quota-used-bytes/>'
        b'<x:color xmlns:x="urn:example"/></prop></propfind>'
    )
    reply = propfind(f"{url}/dav/sub/file.txt", body=asked)
    assert list(responses(reply).values()) == [{"getetag": props_etag(body)}]
    statuses = [s.text for s in ET.fromstring(reply.content).iter(f"{D}status")]
    assert statuses == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"]
    assert b"urn:example" in reply.content
    names = propfind(
        f"{url}/dav/sub/file.txt", body=b'<propfind xmlns="DAV:"><propname/></propfind>'
    )
    assert set(responses(names)["/dav/sub/file.txt"]) >= {"getetag", "getcontentlength"}

    assert propfind(f"{url}/dav/", body=b"<not-xml").status_code == 400
    assert propfind(f"{url}/dav/", body=b"<other/>").status_code == 400
    refused = propfind(f"{url}/dav/", depth="infinity")
    assert refused.status_code == 403 and b"propfind-finite-depth" in refused.content
    assert propfind(f"{url}/dav/", depth=None).status_code == 403  # no Depth is infinity


def props_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


def test_depth_1_lists_a_collection_page_after_page(packrat_server):
    url = packrat_server.url
    keys = [f"many/{n:04}" for n in range(MAX_PAGE + 5)]  # more than one page of the index
    with requests.Session() as session:
        for key in [*keys, "many/deeper/x", "many/deeper/y/z", "many-not/1"]:
            assert session.put(f"{url}/{key}", data=b"x", timeout=10).status_code == 200
    listed = responses(propfind(f"{url}/many/", depth="1"))
    assert list(listed) == ["/many/", *(f"/{key}" for key in keys), "/many/deeper/"]
    assert listed["/many/deeper/"]["resourcetype"] == "collection"
    assert all(listed[f"/{key}"]["getcontentlength"] == "1" for key in keys)
    deeper = responses(propfind(f"{url}/many/deeper", depth="1"))
    assert list(deeper) == ["/many/deeper/", "/many/deeper/x", "/many/deeper/y/"]
    one = responses(propfind(f"{url}/many/0001", depth="1"))  # an object: itself
    assert list(one) == ["/many/0001"]


def test_mkcol_proppatch_delete_options_and_the_methods_refused(packrat_server):
    url = packrat_server.url
    for key in ("tree/a", "tree/b/c", "treetop"):
        assert requests.put(f"{url}/{key}", data=b"x", timeout=10).status_code == 200

    def request(method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, url + path, timeout=10, **kw)

    assert propfind(f"{url}/new/").status_code == 404
    assert request("MKCOL", "/new/").status_code == 201  # nothing to store:
    assert propfind(f"{url}/new/").status_code == 404  # a collection exists while keys lie below
    assert request("MKCOL", "/tree/a").status_code == 405  # an object has that name
    assert request("MKCOL", "/x/", data=b"<x/>").status_code == 415
    patch = (
        b'<propertyupdate xmlns="DAV:"><set><prop><x:a xmlns:x="urn:x">1</x:a>'
        b"</prop></set></propertyupdate>"
    )
    reply = request("PROPPATCH", "/tree/a", data=patch)
    assert reply.status_code == 207 and b"HTTP/1.1 403 Forbidden" in reply.content
    options = request("OPTIONS", "/tree/a")
    assert options.status_code == 200 and options.headers["DAV"] == "1"
    assert "PROPFIND" in options.headers["Allow"]
    for method in ("COPY", "MOVE", "LOCK", "UNLOCK"):
        reply = request(method, "/tree/a", headers={"Destination": f"{url}/tree/z"})
        assert reply.status_code == 405, method
        assert "COPY" not in reply.headers["Allow"]
    assert request("GET", "/tree/").status_code == 400  # a collection is not an object

    assert request("DELETE", "/tree/").status_code == 204  # every key under it
    assert not packrat_server.exists("tree/a") and not packrat_server.exists("tree/b/c")
    assert packrat_server.exists("treetop")
    assert request("DELETE", "/").status_code == 405  # the root stays (DELETE /api/keys purges)


@pytest.fixture
def guarded(make_server):
    server = make_server(
        wait=False,
        auth={
            "enabled": "true",
            "anonymous_read": "true",
            "write_tokens": "writer-token-0123456789",
            "list_tokens": "lister-token-0123456789",
        },
    )
    server.wait_ready()
    return server


def test_listing_over_webdav_needs_the_list_right(guarded):
    url = guarded.url
    writer = {"Authorization": "Bearer writer-token-0123456789"}
    lister = {"Authorization": "Bearer lister-token-0123456789"}
    assert requests.put(f"{url}/hidden/k", data=b"x", headers=writer, timeout=10).ok
    assert propfind(f"{url}/hidden/k").status_code == 207  # read: anyone may
    assert propfind(f"{url}/hidden/", depth="1").status_code == 401
    assert propfind(f"{url}/hidden/", depth="1", headers=writer).status_code == 403
    # Whether a collection holds keys is told only to one who may list names.
    assert propfind(f"{url}/hidden").status_code == 404
    assert propfind(f"{url}/nothing/").status_code == 207
    assert propfind(f"{url}/nothing/", headers=lister).status_code == 404
    listed = responses(propfind(f"{url}/hidden", depth="1", headers=lister))
    assert list(listed) == ["/hidden/", "/hidden/k"]
    delete = requests.delete(f"{url}/hidden/", headers=writer, timeout=10)
    assert delete.status_code == 403 and guarded.exists("hidden/k")  # purging lists: both rights
    assert requests.request("MKCOL", f"{url}/m/", timeout=10).status_code == 401
