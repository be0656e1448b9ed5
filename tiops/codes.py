"""The catalogue of finding codes.

Codes are stable: tools, SARIF consumers and suppressions rely on them, so a
code is never reused for another meaning. docs/findings.md lists them all and
a test keeps that page in step with this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from tiops.findings import Finding, Location, Severity


@dataclass(frozen=True)
class Code:
    code: str
    slug: str
    severity: Severity
    title: str
    hint: str


_CODES = [
    # Files and YAML
    Code("TI100", "yaml-syntax", Severity.ERROR, "The file is not valid YAML 1.2.", "Fix the syntax at the position shown; quote values that contain ': ' or start with a special character."),
    Code("TI101", "yaml-duplicate-key", Severity.ERROR, "A mapping has the same key twice.", "Keep one of the two keys; YAML would silently drop the other value."),
    Code("TI102", "yaml-unsafe-tag", Severity.ERROR, "The file uses a YAML tag that tiops does not accept.", "Remove the tag: intel files hold plain mappings, lists, strings and numbers."),
    Code("TI103", "yaml-alias-limit", Severity.ERROR, "YAML aliases expand beyond the safe limit (an alias bomb).", "Write the repeated content out or use _defaults.yaml instead of nested aliases."),
    Code("TI104", "not-an-object", Severity.ERROR, "The document is not a STIX object mapping or a list of them.", "Write one mapping per file, or a list of mappings."),
    Code("TI105", "multiple-documents", Severity.ERROR, "The file holds more than one YAML document.", "Use a YAML list of objects in one document instead of '---' separators."),
    Code("TI106", "file-unreadable", Severity.ERROR, "The file cannot be read as UTF-8 text.", "Save the file as UTF-8."),
    Code("TI107", "folder-unreadable", Severity.ERROR, "The intel folder is missing or no folder, or a folder under the intel or rules folder cannot be listed.", "Make it a folder tiops can list (read and execute permission), or name the intel folder in tiops.yaml: its objects would otherwise be missing from the bundle."),
    Code("TI108", "not-a-regular-file", Severity.ERROR, "The path is not a regular file inside the repository (a pipe, a device, a socket, or a symlink that leaves the repository).", "Replace it with a regular file, or point the symlink at a file inside the repository."),
    Code("TI109", "file-too-large", Severity.ERROR, "The file is larger than tiops reads (docs/limits.md).", "Split the objects over several files."),
    Code("TI110", "config-invalid", Severity.ERROR, "tiops.yaml does not match its schema.", "See docs/format.md for the keys tiops.yaml accepts."),
    Code("TI111", "defaults-invalid", Severity.ERROR, "_defaults.yaml does not match its schema.", "A _defaults.yaml has only 'defaults:' (a mapping) and 'source:' (a string)."),
    Code("TI112", "nesting-too-deep", Severity.ERROR, "Mappings and lists are nested deeper than tiops reads (docs/limits.md).", "Flatten the value: STIX objects need only a few levels."),
    Code("TI113", "key-not-a-string", Severity.ERROR, "A mapping key is not a string (YAML allows 1: or ~: as keys; STIX, being JSON, does not).", "Quote the key, for example '\"1\": x', or remove it."),
    Code("TI114", "file-name-not-utf8", Severity.ERROR, "A file or folder name is not valid UTF-8.", "Rename it with a UTF-8 name: the name is shown in findings, reports and code scanning."),
    Code("TI115", "yaml-suffix-case", Severity.WARNING, "A file's name ends in .yaml or .yml in other letters (.YAML, .Yml): tiops reads files ending in .yaml or .yml, so this one was not read and its objects are in no build.", "Rename it to end in .yaml (lower case)."),
    Code("TI116", "yaml-ambiguous-number", Severity.ERROR, "A plain value is spelled as a number YAML 1.2 does not know (1_000, 0b101, 0X1F, +0x1F): tiops' YAML reader takes it as a number, as YAML 1.1 did, while the YAML 1.2 core schema (section 10.3.2) and YAML 1.2 tools read text, so its value depends on the reader; the file is not read.", "Quote the value ('1_000') if it is text; if it is a number, write it as YAML 1.2 does (1000, 0x1F, 0o17)."),
    Code("TI140", "report-panel-invalid", Severity.ERROR, "A panel of report.yaml is not a valid panel definition.", "A panel has a title, an optional query, group-by (or bars), chart: bar, table or timeline, and a limit of 1 or more (docs/review.md#report-panels)."),
    Code("TI141", "report-panel-query-invalid", Severity.ERROR, "A panel's query or field is not valid in the query language.", "Fix the expression or field name as the message says; the language is described in docs/query.md."),
    Code("TI120", "id-derived", Severity.INFO, "The object has no id; tiops derived a stable one.", "Write the derived id into the file to pin it: renaming the object would otherwise change its id."),
    Code("TI130", "deprecated-key", Severity.WARNING, "tiops.yaml uses the old spelling of a key.", "Rename the key as the message says; the old spelling still works for now."),
    Code("TI150", "enrichment-lock-invalid", Severity.ERROR, "A file of the enrichment lock (intel/.enrichment/) cannot be used.", "Fix or delete the file and run 'tiops enrich' to write it again; the lock is written by tiops, not by hand."),
    Code("TI151", "enrichment-lock-not-canonical", Severity.WARNING, "A file of the enrichment lock is valid but not byte for byte what `tiops enrich` writes (sorted, one value per line, compact JSON); the location is the first byte that differs.", "Run 'tiops enrich --offline' to rewrite the lock in canonical form."),
    Code("TI152", "enrichment-lock-database-unrecorded", Severity.WARNING, "The enrichment lock holds GeoLocation results, but its lock.json, which names the database and date they came from, is missing.", "Run 'tiops enrich --offline': it writes lock.json again with the database it reads; lock.json is part of the lock, commit it with the shards."),
    # STIX object content
    Code("TI200", "schema", Severity.ERROR, "The object breaks a rule of the STIX 2.1 JSON schema.", "Fix the property as the message says; the STIX 2.1 section it names gives the rule. A bundle from elsewhere is brought in with 'tiops import', which repairs the common defects (docs/import.md)."),
    Code("TI201", "missing-property", Severity.ERROR, "A required property is missing.", "Add the property; 'tiops new TYPE' scaffolds every required property."),
    Code("TI202", "unknown-type", Severity.ERROR, "The object type is not a STIX 2.1 type.", "Use a STIX 2.1 type, or an 'x-' prefixed custom type."),
    Code("TI203", "invalid-id", Severity.ERROR, "The id is not TYPE--UUID with the object's own type.", "Write the id as '<type>--<RFC 4122 UUID>' where <type> is the object's type."),
    Code("TI204", "invalid-timestamp", Severity.ERROR, "A timestamp is not an RFC 3339 UTC timestamp ending in Z.", "Write timestamps like 2024-05-01T12:00:00.000Z (STIX 2.1 section 3.2)."),
    Code("TI205", "modified-before-created", Severity.ERROR, "'modified' is earlier than 'created'.", "Set 'modified' to a time at or after 'created' (STIX 2.1 section 3.2)."),
    Code("TI206", "invalid-time-window", Severity.ERROR, "An end time is not after its start time.", "Make 'valid_until' later than 'valid_from' (or 'last_seen' not before 'first_seen')."),
    Code("TI207", "invalid-pattern", Severity.ERROR, "The STIX pattern does not parse.", "See STIX 2.1 section 9 (STIX Patterning); string literals use single quotes."),
    Code("TI208", "unknown-property", Severity.WARNING, "The property is not defined for this object type.", "Prefix custom properties with 'x_' or move them into an extension."),
    Code("TI209", "open-vocabulary", Severity.WARNING, "The value is not in the STIX 2.1 suggested vocabulary.", "Prefer a value from the open vocabulary named in the message when one fits."),
    Code("TI210", "stix-version", Severity.WARNING, "The content is not STIX 2.1.", "Import it with 'tiops import --format stix' to upgrade it to STIX 2.1."),
    Code("TI211", "invalid-value", Severity.ERROR, "A property value breaks a STIX 2.1 MUST rule.", "See the message for the rule and the STIX 2.1 section it comes from."),
    Code("TI220", "number-out-of-range", Severity.ERROR, "A number is outside what STIX 2.1 can hold: an integer beyond the signed 54-bit range, NaN or Infinity.", "Use an integer from -(2^53)+2 to 2^53-2 (STIX 2.1 section 2.16), or a string when the value is an identifier."),
    # Observable values (tiops/values.py), in SCO properties and pattern literals alike
    Code("TI230", "invalid-ip-address", Severity.ERROR, "An IPv4 or IPv6 value is not an address in CIDR notation.", "Write one address, optionally with a /N prefix (/0 to /32 for IPv4, /128 for IPv6), without leading zeros (STIX 2.1 sections 6.8, 6.9)."),
    Code("TI231", "invalid-email-address", Severity.ERROR, "An email address value is not an RFC 5322 addr-spec.", "Write the bare address like jdoe@example.com; a display name goes in display_name (STIX 2.1 section 6.5)."),
    Code("TI232", "invalid-media-type", Severity.ERROR, "A MIME type is not an IANA media type.", "Write type/subtype with an IANA top-level type, like application/zip or text/plain (STIX 2.1 sections 6.1, 6.7; RFC 6838)."),
    Code("TI233", "invalid-charset", Severity.ERROR, "A character set name is not in the IANA character set registry.", "Write the IANA character set name, like UTF-8 or windows-1252 (STIX 2.1 sections 6.3, 6.7)."),
    Code("TI234", "invalid-url", Severity.ERROR, "A URL is not an RFC 3986 URI.", "Write a full URI with a scheme, like https://example.com/path, percent-encoding spaces (STIX 2.1 section 6.15)."),
    Code("TI235", "invalid-cpe", Severity.ERROR, "A CPE value is not a CPE 2.3 formatted string.", "Write cpe:2.3:part:vendor:product:version:update:edition:language:sw_edition:target_sw:target_hw:other (STIX 2.1 section 6.14)."),
    Code("TI236", "invalid-language-tag", Severity.ERROR, "A language value is not an RFC 5646 language tag.", "Write a tag such as en, de-CH or zh-Hant whose subtags are in the IANA registry (STIX 2.1 sections 3.2, 6.14, 7.1)."),
    Code("TI237", "invalid-hash", Severity.ERROR, "A hash value does not have the length or alphabet of its algorithm.", "Write the hash as its algorithm prints it: MD5 32, SHA-1 40, SHA-256 64, SHA-512 128 hex digits (STIX 2.1 section 2.7)."),
    Code("TI238", "charset-alias", Severity.WARNING, "A character set is named by one of its aliases in the IANA registry.", "Use the registry's name of the character set, like ISO-8859-1 for latin1 (STIX 2.1 sections 6.3, 6.7)."),
    Code("TI239", "invalid-domain-name", Severity.ERROR, "A domain-name value is not a domain name.", "Write the name as DNS holds it, like www.example.com: labels of letters, digits and inner hyphens, at most 63 characters each, joined by single dots (STIX 2.1 section 6.4)."),
    # Property names, lists, conventions and object rules
    Code("TI240", "external-id-convention", Severity.ERROR, "An external reference to CVE or CAPEC does not use its id format.", "Write external_id as CVE-YYYY-NNNN (source_name cve) or CAPEC-N (source_name capec) (STIX 2.1 section 2.5)."),
    Code("TI241", "reserved-property", Severity.ERROR, "The object uses a property name STIX 2.1 reserves.", "Rename the property (severity, action, username and phone_numbers are reserved), e.g. to x_severity, or use an extension."),
    Code("TI242", "custom-property-name", Severity.ERROR, "A custom property name breaks the naming rules.", "Use 3 to 250 characters of a-z, 0-9 and _, starting with a letter, e.g. x_source_score (STIX 2.1 section 11.1)."),
    Code("TI243", "empty-list", Severity.ERROR, "A list property is empty.", "Remove the property instead of leaving it empty: STIX forbids empty lists (STIX 2.1 section 2, list type)."),
    Code("TI244", "sco-id-version", Severity.ERROR, "The id of an SCO without id-contributing properties is not a UUIDv4.", "Give the object a random (version 4) UUID, as STIX 2.1 section 2.9 requires when no id-contributing property is present (process objects always)."),
    Code("TI245", "sco-extension-name", Severity.ERROR, "An SCO extension key is neither a predefined -ext name nor an extension-definition id.", "Use a predefined extension name ending in -ext (e.g. ntfs-ext) or an extension-definition id (STIX 2.1 sections 6, 7.3)."),
    Code("TI246", "invalid-selector", Severity.ERROR, "A granular marking selector is malformed or selects nothing.", "Write selectors like description, labels.[0] or external_references.[1].url, naming properties present in the object (STIX 2.1 section 7.2.3.1)."),
    Code("TI247", "tlp-marking-altered", Severity.ERROR, "A TLP marking-definition differs from the one the specification defines.", "Use the TLP marking-definition exactly as STIX 2.1 section 7.2.1.4 gives it, id included (or reference it without copying it)."),
    Code("TI248", "circular-marking", Severity.ERROR, "A marking-definition marks itself.", "Remove the marking-definition's own id from its object_marking_refs and granular_markings (STIX 2.1 section 7.2)."),
    Code("TI249", "invalid-bundle", Severity.ERROR, "The bundle wrapper is not a STIX 2.1 bundle.", "A bundle has type bundle, an id bundle--<UUID> and an objects list (STIX 2.1 section 8)."),
    Code("TI250", "tlp2-marking-altered", Severity.WARNING, "A TLP 2.0 marking-definition differs from the one the OASIS CTI TC publishes under its id.", "Use the TLP 2.0 marking-definition exactly as cti-stix-common-objects gives it, or reference it without copying it (tiops import replaces it with the published one)."),
    Code("TI251", "extension-key", Severity.ERROR, "An extensions key of an SDO or SRO is not an extension-definition id.", "Name the extension by its extension-definition id (extension-definition--UUID); predefined -ext names belong to SCOs."),
    Code("TI252", "id-upper-case", Severity.WARNING, "The id's UUID has upper-case hex digits: RFC 4122 reads a UUID without regard to case, while ids are compared as written, so two spellings are two objects to tiops and one to many consumers.", "Write the UUID in lower case (RFC 4122 section 3), here and in every reference to it."),
    # STIX 2.1 extensions (section 7.3)
    Code("TI212", "extension-undefined", Severity.ERROR, "An extensions key names an extension-definition that is not in the repository.", "Add the extension-definition object (it usually comes in the same bundle), or fix the id."),
    Code("TI213", "extension-type-mismatch", Severity.ERROR, "An extension is used in a way its extension-definition does not list in extension_types.", "Use one of the definition's extension_types (new-sdo, new-sco, new-sro, property-extension, toplevel-property-extension)."),
    Code("TI214", "extension-object-invalid", Severity.ERROR, "An object of a type defined by an extension-definition lacks or misuses a common property of its kind.", "A new SDO or SRO needs type, spec_version, id, created and modified; a new SCO needs type and id (STIX 2.1 sections 3.2, 6.1, 7.3)."),
    # STIX 2.0 content (docs/findings.md, STIX 2.0 content)
    Code("TI215", "stix-version-mixed", Severity.WARNING, "A bundle that says spec_version 2.0 holds STIX 2.1 content: an object that says spec_version 2.1, or a cyber observable outside observed-data.", "Send 2.1 objects in a STIX 2.1 bundle (no spec_version on the bundle), or the 2.0 form of the object in the 2.0 bundle (STIX 2.0 Part 1, bundle)."),
    # References and identity
    Code("TI300", "dangling-reference", Severity.ERROR, "A reference points to an object that is not in the repository.", "Add the referenced object, fix the id, or remove the reference."),
    Code("TI301", "reference-wrong-type", Severity.ERROR, "A reference points to an object of a type that property does not allow.", "Point the reference at an object of an allowed type."),
    Code("TI302", "duplicate-id", Severity.ERROR, "Two objects have the same id.", "Give one of them a new id, or remove the duplicate; a new version of an object replaces the old one in its file."),
    Code("TI303", "language-content-version", Severity.WARNING, "A language-content's object_modified is not the modified of the object its object_ref names: the object was re-versioned after the translation was written, or the translation names a version the repository does not hold.", "Check that the translations still match the object as it is now, then set object_modified to the object's modified (STIX 2.1 section 7.1)."),
    # Relationships
    Code("TI400", "relationship-not-allowed", Severity.ERROR, "The relationship is not in the allowed (source, type, target) table.", "Use a relationship type that STIX 2.1 Appendix B allows for these types, or add the triple to rules/relationships.yaml."),
    Code("TI401", "inline-relationship-invalid", Severity.ERROR, "An inline relationship entry is malformed.", "Write each entry as {RELATIONSHIP_TYPE: TARGET_ID} with optional relationship properties beside it."),
    Code("TI402", "relationship-rules-invalid", Severity.ERROR, "rules/relationships.yaml does not match its schema.", "Each entry needs 'source', 'type' and 'target' (STIX types, or '*')."),
    # Ingestion rules
    Code("TI500", "rule-file-invalid", Severity.ERROR, "An ingestion rule file does not have the shape of rules/ingestion/*.yaml.", "A rule file is a YAML list of rules with name, order, object_types, when and actions; see docs/rules.md."),
    Code("TI501", "rule-unknown-key", Severity.ERROR, "A rule or condition has a key tiops does not know.", "Check the spelling; a rule has name, description, order, enabled, object_types, when, actions and tests (docs/rules.md)."),
    Code("TI502", "rule-unknown-field", Severity.ERROR, "A condition tests a field that is not a STIX 2.1 property nor source, tags, tlp or file.", "Use a STIX property name or dotted path, an x_ custom property, or source, tags, tlp, file."),
    Code("TI503", "rule-unknown-operator", Severity.ERROR, "A condition uses an operator tiops does not know.", "Use one of the operators listed in docs/rules.md, such as equals, in, matches, >= or older-than."),
    Code("TI504", "rule-unknown-action", Severity.ERROR, "A rule action is not one tiops knows.", "Use drop, extend, set, add_tags, remove_tags, set_confidence or revoke, one per list entry."),
    Code("TI505", "rule-bad-regex", Severity.ERROR, "A 'matches' condition holds a regular expression that does not compile.", "Fix the expression (Python re syntax); quote it in YAML with single quotes so backslashes stay as written."),
    Code("TI506", "rule-bad-duration", Severity.ERROR, "A duration does not parse.", "Write durations as a whole number and a unit: 30d, 12h, 2w (also s and m)."),
    Code("TI507", "rule-never-matches", Severity.WARNING, "A rule can never match: its own object_types and condition exclude each other.", "Widen object_types or fix the condition so some object can pass it."),
    Code("TI508", "rule-duplicate-name", Severity.ERROR, "Two ingestion rules have the same name.", "Give each rule its own name: traces and 'tiops explain' name rules."),
    Code("TI509", "rule-test-invalid", Severity.ERROR, "A rule test is malformed.", "A rule test has input (a STIX object), expect ({dropped: BOOL} or {fields: {...}}), and optional name, source, as_of and enrichment (locked results for the input's values)."),
    Code("TI510", "rule-bad-value", Severity.ERROR, "An operator or action has a value of the wrong kind.", "See the operator or action in docs/rules.md for the value it takes."),
    Code("TI511", "rule-needs-as-of", Severity.ERROR, "A rule compares with the as-of time, and there is none.", "Run in a git checkout with a commit, or pass --as-of."),
    Code("TI512", "rule-unknown-type", Severity.ERROR, "object_types names a type that is not a STIX 2.1 type.", "Use STIX 2.1 type names such as indicator, or x- prefixed custom types."),
    Code("TI513", "rule-file-not-read", Severity.WARNING, "A YAML file sits directly in the rules folder, where nothing reads it.", "Move ingestion rules to rules/ingestion/ (relationship rules belong in rules/relationships.yaml), or delete the file."),
    Code("TI514", "reference-to-dropped", Severity.WARNING, "An object of the bundle refers to an object an ingestion rule dropped.", "Drop the referring object too, remove the reference, or narrow the rule: the bundle names an object it does not hold (tiops validate BUNDLE reports TI300)."),
    # Partner-source protection (imported intel and overlays)
    Code("TI700", "partner-field-read-only", Severity.ERROR, "A property of imported partner intel was changed in its file.", "Restore the imported value: partner intel is read-only except labels, valid_until, confidence and revoked, which are changed in the source's _overlay.yaml (docs/import.md)."),
    Code("TI701", "partner-edit-outside-overlay", Severity.ERROR, "An overlayable property of partner intel was changed in the imported file instead of the overlay.", "Restore the imported value and set the property in the source's _overlay.yaml, where a re-import keeps it."),
    Code("TI702", "overlay-unknown-id", Severity.ERROR, "The overlay names an object that the source folder does not hold.", "Fix the id, or remove the entry if the partner no longer sends the object."),
    Code("TI703", "overlay-field-not-allowed", Severity.ERROR, "The overlay sets a property that partner intel does not let a repository change.", "Overlay only labels, valid_until, confidence and revoked; for other changes, create an object of your own that refers to the partner's."),
    Code("TI704", "overlay-invalid", Severity.ERROR, "The overlay or one of its values has the wrong shape.", "_overlay.yaml maps object ids to {labels: [..], valid_until: TIMESTAMP, confidence: 0-100, revoked: BOOL}; null removes a property."),
    Code("TI705", "partner-bookkeeping", Severity.ERROR, "An imported source folder cannot be checked: _imported.json is missing or broken, or holds an object that was not imported.", "Re-run 'tiops import' for the source; keep objects of your own in a folder outside the source's folder."),
    Code("TI706", "partner-object-deleted", Severity.ERROR, "An object imported into a source folder is gone from it: its file was deleted or moved out.", "Restore the file (git checkout, or re-run 'tiops import' for the source); to stop using a partner object, set revoked: true for it in the source's _overlay.yaml."),
    Code("TI707", "overlay-outside-source-folder", Severity.ERROR, "An _overlay.yaml is not in an imported source folder: overlays change partner intel only, from the folder 'tiops import' wrote (beside its _defaults.yaml with imported: true), so this one changes nothing; it is not read as objects either.", "Move the entries to the _overlay.yaml of the source folder that holds those objects (docs/import.md); objects of your own are edited in their files, and a file of objects needs another name."),
    # Versioning between revisions (tiops validate --base)
    Code("TI800", "modified-not-later", Severity.ERROR, "The object's content changed but its 'modified' is not later than in the base revision.", "Run 'tiops bump --base REF' to set 'modified' on every changed object (STIX 2.1 section 3.6: a new version has a later modified)."),
    Code("TI801", "id-changed", Severity.ERROR, "An object's id or type changed between the base revision and the change.", "Keep the id: an id names one object for ever (STIX 2.1 section 3.6); revoke the old object and create a new one instead."),
    Code("TI802", "created-changed", Severity.ERROR, "An object's 'created' changed between the base revision and the change.", "Restore 'created': it is the same in every version of an object (STIX 2.1 section 3.6)."),
    Code("TI803", "deleted-not-revoked", Severity.WARNING, "An object was deleted from the repository instead of being revoked.", "Restore the file with 'revoked: true' and a later 'modified' so consumers learn it is withdrawn (STIX 2.1 section 3.6)."),
    Code("TI804", "unrevoked", Severity.ERROR, "An object revoked in the base revision is no longer revoked.", "Keep 'revoked: true': a revoked object stays revoked (STIX 2.1 section 3.6); create a new object instead."),
]

CODES: dict[str, Code] = {c.code: c for c in _CODES}


# The longest message a finding shows whole (quoted values included); findings.md says so.
MAX_MESSAGE = 2_000


def cut_message(message: str) -> str:
    """``message`` whole up to :data:`MAX_MESSAGE` characters, else its two ends and how much was left out
    (for every place that makes or rewrites a finding's message)."""
    if len(message) <= MAX_MESSAGE:
        return message
    left_out = len(message) - MAX_MESSAGE
    return f"{message[:MAX_MESSAGE // 2]}…[{left_out} characters left out]…{message[-MAX_MESSAGE // 2:]}"


def make_finding(
    code: str,
    message: str,
    location: Location,
    *,
    stix_id: str | None = None,
    hint: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the catalogue's default severity and hint.

    A message is cut in its middle past :data:`MAX_MESSAGE` characters: one quoting a value of a
    million characters was a million-character line in every log, annotation and SARIF file.
    """
    entry = CODES[code]
    message = cut_message(message)
    return Finding(
        code=code,
        severity=entry.severity if severity is None else severity,
        message=message,
        location=location,
        hint=entry.hint if hint is None else hint,
        stix_id=stix_id,
    )
