"""Company domains from emails and websites: the one normaliser the worker and the connectors share.

A lead's ``domain`` (what account rules and account-owner lookups key on) and the domain of a
CRM Account's ``Website`` must be computed the same way, or a lookup would miss its own
account; so both :mod:`worker.domain.normalize` and the Salesforce connector use
:func:`domain_of` from here. Pure and offline: the public-suffix list is the snapshot bundled
with ``tldextract``, loaded once, on first use or by :func:`warm_up`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tldextract

__all__ = ["domain_of", "is_free_mail", "warm_up"]

# Consumer mailbox providers: a lead from one says nothing about the company, so it must
# not match named-account or domain rules.
_FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "ymail.com", "rocketmail.com", "msn.com", "passport.com",
    "windowslive.com", "icloud.com", "me.com", "mac.com", "aim.com", "proton.me", "pm.me",
    "protonmail.com", "protonmail.ch", "tutanota.com", "tutanota.de", "tuta.io",
    "tutamail.com", "mailbox.org", "posteo.de", "posteo.net", "web.de", "t-online.de",
    "freenet.de", "arcor.de", "mail.de", "mail.ru", "bk.ru", "inbox.ru", "list.ru",
    "rambler.ru", "ya.ru", "qq.com", "foxmail.com", "163.com", "126.com", "yeah.net",
    "sina.com", "sina.cn", "sohu.com", "aliyun.com", "139.com", "naver.com", "daum.net",
    "hanmail.net", "zoho.com", "zohomail.com", "mail.com", "email.com", "usa.com",
    "fastmail.com", "fastmail.fm", "hushmail.com", "hey.com", "inbox.com", "lycos.com",
    "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it",
    "virgilio.it", "tiscali.it", "alice.it", "btinternet.com", "sky.com",
    "virginmedia.com", "blueyonder.co.uk", "talktalk.net", "ntlworld.com", "comcast.net",
    "verizon.net", "att.net", "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net",
    "earthlink.net", "juno.com", "optonline.net", "shaw.ca", "rogers.com", "sympatico.ca",
    "bigpond.com", "bigpond.net.au", "optusnet.com.au", "xtra.co.nz", "rediffmail.com",
    "seznam.cz", "centrum.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "abv.bg",
    "ukr.net", "terra.com.br", "bol.com.br", "uol.com.br", "ig.com.br", "yopmail.com",
    "mailinator.com", "guerrillamail.com", "10minutemail.com", "temp-mail.org",
})  # fmt: skip
# Providers that run the same service under many country suffixes (yahoo.co.uk, gmx.at).
_FREE_MAIL_FAMILIES = frozenset({"yahoo", "hotmail", "outlook", "live", "gmx", "yandex", "aol"})
_BAD_HOST_CHARS = frozenset(" ,;/\\<>()[]{}\"'!*|")


@lru_cache(maxsize=1)
def _extractor() -> tldextract.TLDExtract:
    """Public-suffix extractor that never touches the network or the disk.

    No suffix-list URLs and no cache directory: tldextract falls back to the snapshot
    bundled with the package, so a worker in a locked-down network never stalls on
    start-up and behaves the same everywhere.
    """
    import tldextract  # it loads requests (for list updates never made here): only reading a domain pays for that

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def warm_up() -> None:
    """Load the bundled suffix list now (once per process, e.g. before forking), not on the first lead."""
    _extractor()("warm.up.example.co.uk")


@lru_cache(maxsize=8192)
def _registrable(host: str) -> str | None:
    """Registrable domain ("sales.eu.acme.co.uk" -> "acme.co.uk") of a host, or None."""
    host = host.strip().strip(".").lower()
    if not host or "." not in host or not _BAD_HOST_CHARS.isdisjoint(host):
        return None
    ext = _extractor()(host)
    if not ext.domain or not ext.suffix:
        return None
    return f"{ext.domain}.{ext.suffix}"




@lru_cache(maxsize=4096)
def _free_mail(domain: str) -> bool:
    domain = domain.strip().strip(".").lower()
    if domain in _FREE_MAIL_DOMAINS:
        return True
    registrable = _registrable(domain)
    if registrable is None:
        return False
    return registrable in _FREE_MAIL_DOMAINS or registrable.split(".", 1)[0] in _FREE_MAIL_FAMILIES


def is_free_mail(domain: str) -> bool:
    """True when the domain (or any host under it) belongs to a consumer mailbox
    provider: gmail.com, yahoo.*, hotmail.*, gmx.*, web.de, qq.com, ..."""
    return isinstance(domain, str) and _free_mail(domain)


def _website_host(text: str) -> str:
    text = text.strip()
    scheme = text.find("://")
    if scheme != -1:
        text = text[scheme + 3 :]
    elif text.startswith("//"):
        text = text[2:]
    for sep in "/?#":
        text = text.partition(sep)[0]
    text = text.rpartition("@")[2]  # user:pass@host
    if text.startswith("["):  # IPv6 literal
        return ""
    return text.partition(":")[0]


@lru_cache(maxsize=8192)
def _company_domain(host: str) -> str | None:
    registrable = _registrable(host)
    if registrable is None or _free_mail(registrable):
        return None
    return registrable


def domain_of(email: object = None, website: object = None) -> str | None:
    """The company's registrable domain, lower case, from the email, else the website.

    Scheme, path, port, "www." and other subdomains are stripped ("https://www.shop.acme
    .co.uk:8443/x" -> "acme.co.uk"). A free-mail address gives no company, so the website
    is tried next; None when neither yields one.
    """
    if isinstance(email, str) and "@" in email:
        host = email.rpartition("@")[2].strip().rstrip(">").strip()
        found = _company_domain(host)
        if found is not None:
            return found
    if isinstance(website, str):
        return _company_domain(_website_host(website))
    return None
