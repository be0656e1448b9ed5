"""Enrichment: GeoLocation, ASN and WHOIS (RDAP) results, locked in the repository.

Peers enrich live, so their builds depend on when they ran. tiops keeps results
as data: ``tiops enrich`` looks values up and writes them to a lock inside the
intel folder (``intel/.enrichment/``), the team reviews and commits it, and
``compile`` reads only the lock (no network, no clock).

* :mod:`tiops.enrich.values` says which values intel names (IPs, domains, URL hosts);
* :mod:`tiops.enrich.lock` reads and writes the lock (sharded, sorted, canonical);
* :mod:`tiops.enrich.geo` the offline GeoLocation/ASN databases;
* :mod:`tiops.enrich.rdap` the RDAP (WHOIS) client;
* :mod:`tiops.enrich.subject` whether an RDAP answer is about the value asked, as received and as locked;
* :mod:`tiops.enrich.run` an enrichment run;
* :mod:`tiops.enrich.attach` puts locked results on objects (rules, compile);
* :mod:`tiops.enrich.origin` says where each result came from (``tiops explain``).

Only :mod:`~tiops.enrich.values`, :mod:`~tiops.enrich.lock` and
:mod:`~tiops.enrich.attach` are imported by the build; they never touch the network.
"""

from __future__ import annotations
