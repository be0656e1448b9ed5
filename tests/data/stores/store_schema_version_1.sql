-- A SQLite store as tiops wrote it at store schema version 1 (before tiops_store_schema), with
-- tests/stores/test_sentinel_tables.py's OBJECTS, to test the migration. Written by sqlite3's iterdump.
BEGIN TRANSACTION;
CREATE TABLE ThreatIntelIndicators (
    TenantId TEXT,
    TimeGenerated TEXT,
    Id TEXT NOT NULL,
    Type TEXT NOT NULL,
    ObservableKey TEXT,
    ObservableValue TEXT,
    Pattern TEXT,
    PatternType TEXT,
    Confidence INTEGER,
    Created TEXT,
    Modified TEXT,
    ValidFrom TEXT,
    ValidUntil TEXT,
    IsActive INTEGER NOT NULL,
    IsDeleted INTEGER NOT NULL,
    LastUpdateMethod TEXT,
    SourceSystem TEXT,
    Tags TEXT,
    AdditionalFields TEXT,
    Data TEXT NOT NULL
);
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000001','ThreatIntelIndicators','ipv4-addr:value','203.0.113.45','[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']','stix',80,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z',NULL,1,0,'tiops',NULL,'["c2","apt"]',NULL,'{"confidence":80,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000001","indicator_types":["malicious-activity","attribution"],"labels":["c2","apt"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 1","pattern":"[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000001','ThreatIntelIndicators','ipv4-addr:value','203.0.113.46','[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']','stix',80,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z',NULL,1,0,'tiops',NULL,'["c2","apt"]',NULL,'{"confidence":80,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000001","indicator_types":["malicious-activity","attribution"],"labels":["c2","apt"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 1","pattern":"[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000003','ThreatIntelIndicators','domain-name:value','old.example','[domain-name:value = ''old.example'']','stix',NULL,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z','2025-03-01T00:00:00Z',0,0,'tiops',NULL,NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000003","indicator_types":["anomalous-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 3","pattern":"[domain-name:value = ''old.example'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2025-03-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000004','ThreatIntelIndicators','url:value','https://example.com/a','[url:value = ''https://example.com/a'']','stix',NULL,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z',NULL,0,1,'tiops',NULL,NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000004","modified":"2025-01-01T00:00:00.000Z","name":"indicator 4","pattern":"[url:value = ''https://example.com/a'']","pattern_type":"stix","revoked":true,"spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000005','ThreatIntelIndicators','ipv4-addr:value','198.51.100.1','[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]','stix',NULL,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z','2026-01-01T00:00:00Z',1,0,'tiops',NULL,NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000005","modified":"2025-01-01T00:00:00.000Z","name":"indicator 5","pattern":"[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2026-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000005','ThreatIntelIndicators','ipv4-addr:value','198.51.100.2','[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]','stix',NULL,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z','2026-01-01T00:00:00Z',1,0,'tiops',NULL,NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000005","modified":"2025-01-01T00:00:00.000Z","name":"indicator 5","pattern":"[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2026-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000002','ThreatIntelIndicators','file:name','C:\Windows\Temp\o''neil.exe','[file:name = ''C:\\Windows\\Temp\\o\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']','stix',40,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z',NULL,1,0,'tiops',NULL,NULL,NULL,'{"confidence":40,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000002","indicator_types":["malicious-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 2","pattern":"[file:name = ''C:\\\\Windows\\\\Temp\\\\o\\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}');
INSERT INTO "ThreatIntelIndicators" VALUES(NULL,'2025-01-01T00:00:00.000Z','indicator--00000000-0000-4000-8000-000000000002','ThreatIntelIndicators','file:hashes.''SHA-256''','aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f','[file:name = ''C:\\Windows\\Temp\\o\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']','stix',40,'2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00Z',NULL,1,0,'tiops',NULL,NULL,NULL,'{"confidence":40,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000002","indicator_types":["malicious-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 2","pattern":"[file:name = ''C:\\\\Windows\\\\Temp\\\\o\\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}');
CREATE TABLE ThreatIntelObjects (
    TenantId TEXT,
    TimeGenerated TEXT,
    Id TEXT PRIMARY KEY,
    Type TEXT NOT NULL,
    StixType TEXT NOT NULL,
    IsDeleted INTEGER NOT NULL,
    LastUpdateMethod TEXT,
    SourceSystem TEXT,
    Tags TEXT,
    Data TEXT NOT NULL
);
INSERT INTO "ThreatIntelObjects" VALUES(NULL,'2025-01-01T00:00:00.000Z','threat-actor--00000000-0000-4000-8000-000000000006','ThreatIntelObjects','threat-actor',0,'tiops',NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"threat-actor--00000000-0000-4000-8000-000000000006","modified":"2025-01-01T00:00:00.000Z","name":"Copper Lantern","spec_version":"2.1","threat_actor_types":["crime-syndicate"],"type":"threat-actor"}');
INSERT INTO "ThreatIntelObjects" VALUES(NULL,'2025-01-01T00:00:00.000Z','malware--00000000-0000-4000-8000-000000000007','ThreatIntelObjects','malware',0,'tiops',NULL,'["loader"]','{"created":"2025-01-01T00:00:00.000Z","id":"malware--00000000-0000-4000-8000-000000000007","is_family":true,"labels":["loader"],"modified":"2025-01-01T00:00:00.000Z","name":"LanternLoader","spec_version":"2.1","type":"malware"}');
INSERT INTO "ThreatIntelObjects" VALUES(NULL,'2025-01-01T00:00:00.000Z','relationship--00000000-0000-4000-8000-000000000008','ThreatIntelObjects','relationship',0,'tiops',NULL,NULL,'{"created":"2025-01-01T00:00:00.000Z","id":"relationship--00000000-0000-4000-8000-000000000008","modified":"2025-01-01T00:00:00.000Z","relationship_type":"indicates","source_ref":"indicator--00000000-0000-4000-8000-000000000001","spec_version":"2.1","target_ref":"malware--00000000-0000-4000-8000-000000000007","type":"relationship"}');
CREATE TABLE stix_current (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked INTEGER NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    managed INTEGER NOT NULL DEFAULT 0,
    object TEXT NOT NULL,
    object_digest TEXT
);
INSERT INTO "stix_current" VALUES('indicator--00000000-0000-4000-8000-000000000001','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'fb35d5e2a34e6f91df2076240d6c2bebdc6f6a981e537edf3c5eb2f31368d4bb','tiops',1,'{"confidence":80,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000001","indicator_types":["malicious-activity","attribution"],"labels":["c2","apt"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 1","pattern":"[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','ca62ab32a326627b1e667255fe9ec7946b5d642366f6dd1691c88cabbedce2d1');
INSERT INTO "stix_current" VALUES('indicator--00000000-0000-4000-8000-000000000002','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'92dffd254ab7bed657c2abf9121377cb1c09c4a7d06d9f496b5bf9fe8bfbbc83','tiops',1,'{"confidence":40,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000002","indicator_types":["malicious-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 2","pattern":"[file:name = ''C:\\\\Windows\\\\Temp\\\\o\\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','73db184c5d0831810797412cb599099b6fbfca62384f20ff5f27c0bc0d8d428b');
INSERT INTO "stix_current" VALUES('indicator--00000000-0000-4000-8000-000000000003','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'65f5ade6eaee0cf626b194df42b05b8cc1d8d32a550ce4b10eab7072a45af423','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000003","indicator_types":["anomalous-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 3","pattern":"[domain-name:value = ''old.example'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2025-03-01T00:00:00Z"}','9d21720f1fd0edd52415b017d9bc5e66bae304d8bdd3b5b8e1d0280261fd0dc2');
INSERT INTO "stix_current" VALUES('indicator--00000000-0000-4000-8000-000000000004','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',1,'6cb4477b82640e17bac32179637f76400aa925c628e118bd54cc8eb2669b8afa','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000004","modified":"2025-01-01T00:00:00.000Z","name":"indicator 4","pattern":"[url:value = ''https://example.com/a'']","pattern_type":"stix","revoked":true,"spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','7a64eb77ac8f7b8b3465c6847db0c91c59e4523b89a0d52f5195ad4f0b733674');
INSERT INTO "stix_current" VALUES('indicator--00000000-0000-4000-8000-000000000005','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'3690fd87b48e80cc50c24e883041d4fa2bfa6ee5077dfe9cbba5c5afe026aa71','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000005","modified":"2025-01-01T00:00:00.000Z","name":"indicator 5","pattern":"[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2026-01-01T00:00:00Z"}','c3195b23082ca6c13b5efa249db2d338bcae154ba7acab7a17b4f17ddde61046');
INSERT INTO "stix_current" VALUES('threat-actor--00000000-0000-4000-8000-000000000006','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','threat-actor',0,'f074380f205095954b17253aa75caefca494609018ce88be76b50e3c49050aeb','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"threat-actor--00000000-0000-4000-8000-000000000006","modified":"2025-01-01T00:00:00.000Z","name":"Copper Lantern","spec_version":"2.1","threat_actor_types":["crime-syndicate"],"type":"threat-actor"}','0418a152bf16965145e50f747747f6b5f423f696ca7eb5e05ae34550dd832b8f');
INSERT INTO "stix_current" VALUES('malware--00000000-0000-4000-8000-000000000007','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','malware',0,'dd89e1bf0e4e3624ba484d9e7d1f4b5ec1a11e17794a1cd05a9c785f45e2d714','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"malware--00000000-0000-4000-8000-000000000007","is_family":true,"labels":["loader"],"modified":"2025-01-01T00:00:00.000Z","name":"LanternLoader","spec_version":"2.1","type":"malware"}','bf97f4df2f640aaa030c34ca1c52a26aaa382678087f094c5c012902a7cdb45e');
INSERT INTO "stix_current" VALUES('relationship--00000000-0000-4000-8000-000000000008','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','relationship',0,'1038ba424c0ea68db967cb4743c128c6fa94007f862473ac9bced8d462bd80bb','tiops',1,'{"created":"2025-01-01T00:00:00.000Z","id":"relationship--00000000-0000-4000-8000-000000000008","modified":"2025-01-01T00:00:00.000Z","relationship_type":"indicates","source_ref":"indicator--00000000-0000-4000-8000-000000000001","spec_version":"2.1","target_ref":"malware--00000000-0000-4000-8000-000000000007","type":"relationship"}','88e2aff900516caf1178f32dfea286176e8ae58f4360c4ddc67b61d7e6ed468d');
CREATE TABLE stix_versions (
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    version_sort TEXT NOT NULL,
    type TEXT NOT NULL,
    revoked INTEGER NOT NULL,
    digest TEXT,
    written_by TEXT NOT NULL DEFAULT 'external',
    object TEXT NOT NULL,
    object_digest TEXT,
    PRIMARY KEY (id, version)
);
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000001','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'fb35d5e2a34e6f91df2076240d6c2bebdc6f6a981e537edf3c5eb2f31368d4bb','tiops','{"confidence":80,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000001","indicator_types":["malicious-activity","attribution"],"labels":["c2","apt"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 1","pattern":"[ipv4-addr:value = ''203.0.113.45''] OR [ipv4-addr:value = ''203.0.113.46'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','ca62ab32a326627b1e667255fe9ec7946b5d642366f6dd1691c88cabbedce2d1');
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000002','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'92dffd254ab7bed657c2abf9121377cb1c09c4a7d06d9f496b5bf9fe8bfbbc83','tiops','{"confidence":40,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000002","indicator_types":["malicious-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 2","pattern":"[file:name = ''C:\\\\Windows\\\\Temp\\\\o\\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','73db184c5d0831810797412cb599099b6fbfca62384f20ff5f27c0bc0d8d428b');
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000003','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'65f5ade6eaee0cf626b194df42b05b8cc1d8d32a550ce4b10eab7072a45af423','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000003","indicator_types":["anomalous-activity"],"modified":"2025-01-01T00:00:00.000Z","name":"indicator 3","pattern":"[domain-name:value = ''old.example'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2025-03-01T00:00:00Z"}','9d21720f1fd0edd52415b017d9bc5e66bae304d8bdd3b5b8e1d0280261fd0dc2');
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000004','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',1,'6cb4477b82640e17bac32179637f76400aa925c628e118bd54cc8eb2669b8afa','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000004","modified":"2025-01-01T00:00:00.000Z","name":"indicator 4","pattern":"[url:value = ''https://example.com/a'']","pattern_type":"stix","revoked":true,"spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','7a64eb77ac8f7b8b3465c6847db0c91c59e4523b89a0d52f5195ad4f0b733674');
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000002','2024-12-01T00:00:00.000Z','2024-12-01T00:00:00.000000000','indicator',0,'98044166723c758d97d0dd99ab73f7865a680d297d18f0949a739c59d6d09e86','tiops','{"confidence":10,"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000002","indicator_types":["malicious-activity"],"modified":"2024-12-01T00:00:00.000Z","name":"indicator 2","pattern":"[file:name = ''C:\\\\Windows\\\\Temp\\\\o\\''neil.exe'' AND file:hashes.''SHA-256'' = ''aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f'']","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z"}','61bdb466a57b3f3c2a1c5db21cc0d8491f64929585894e2a06bb7bcfcfa9b4c0');
INSERT INTO "stix_versions" VALUES('indicator--00000000-0000-4000-8000-000000000005','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','indicator',0,'3690fd87b48e80cc50c24e883041d4fa2bfa6ee5077dfe9cbba5c5afe026aa71','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"indicator--00000000-0000-4000-8000-000000000005","modified":"2025-01-01T00:00:00.000Z","name":"indicator 5","pattern":"[ipv4-addr:value IN (''198.51.100.1'', ''198.51.100.2'')]","pattern_type":"stix","spec_version":"2.1","type":"indicator","valid_from":"2025-01-01T00:00:00Z","valid_until":"2026-01-01T00:00:00Z"}','c3195b23082ca6c13b5efa249db2d338bcae154ba7acab7a17b4f17ddde61046');
INSERT INTO "stix_versions" VALUES('threat-actor--00000000-0000-4000-8000-000000000006','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','threat-actor',0,'f074380f205095954b17253aa75caefca494609018ce88be76b50e3c49050aeb','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"threat-actor--00000000-0000-4000-8000-000000000006","modified":"2025-01-01T00:00:00.000Z","name":"Copper Lantern","spec_version":"2.1","threat_actor_types":["crime-syndicate"],"type":"threat-actor"}','0418a152bf16965145e50f747747f6b5f423f696ca7eb5e05ae34550dd832b8f');
INSERT INTO "stix_versions" VALUES('malware--00000000-0000-4000-8000-000000000007','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','malware',0,'dd89e1bf0e4e3624ba484d9e7d1f4b5ec1a11e17794a1cd05a9c785f45e2d714','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"malware--00000000-0000-4000-8000-000000000007","is_family":true,"labels":["loader"],"modified":"2025-01-01T00:00:00.000Z","name":"LanternLoader","spec_version":"2.1","type":"malware"}','bf97f4df2f640aaa030c34ca1c52a26aaa382678087f094c5c012902a7cdb45e');
INSERT INTO "stix_versions" VALUES('relationship--00000000-0000-4000-8000-000000000008','2025-01-01T00:00:00.000Z','2025-01-01T00:00:00.000000000','relationship',0,'1038ba424c0ea68db967cb4743c128c6fa94007f862473ac9bced8d462bd80bb','tiops','{"created":"2025-01-01T00:00:00.000Z","id":"relationship--00000000-0000-4000-8000-000000000008","modified":"2025-01-01T00:00:00.000Z","relationship_type":"indicates","source_ref":"indicator--00000000-0000-4000-8000-000000000001","spec_version":"2.1","target_ref":"malware--00000000-0000-4000-8000-000000000007","type":"relationship"}','88e2aff900516caf1178f32dfea286176e8ae58f4360c4ddc67b61d7e6ed468d');
CREATE TABLE tiops_indicator_legacy (
    IndicatorId TEXT PRIMARY KEY,
    ExternalIndicatorId TEXT,
    SourceSystem TEXT,
    IndicatorProvider TEXT,
    Description TEXT,
    ThreatType TEXT,
    ConfidenceScore REAL,
    ExpirationDateTime TEXT,
    TimeGenerated TEXT,
    Active INTEGER,
    TrafficLightProtocolLevel TEXT,
    Tags TEXT,
    KillChainPhases TEXT
);
INSERT INTO "tiops_indicator_legacy" VALUES('indicator--00000000-0000-4000-8000-000000000001','indicator--00000000-0000-4000-8000-000000000001',NULL,NULL,'indicator 1','malicious-activity,attribution',80.0,NULL,'2025-01-01T00:00:00.000Z',1,NULL,'c2,apt',NULL);
INSERT INTO "tiops_indicator_legacy" VALUES('indicator--00000000-0000-4000-8000-000000000003','indicator--00000000-0000-4000-8000-000000000003',NULL,NULL,'indicator 3','anomalous-activity',NULL,'2025-03-01T00:00:00Z','2025-01-01T00:00:00.000Z',1,NULL,NULL,NULL);
INSERT INTO "tiops_indicator_legacy" VALUES('indicator--00000000-0000-4000-8000-000000000004','indicator--00000000-0000-4000-8000-000000000004',NULL,NULL,'indicator 4',NULL,NULL,NULL,'2025-01-01T00:00:00.000Z',0,NULL,NULL,NULL);
INSERT INTO "tiops_indicator_legacy" VALUES('indicator--00000000-0000-4000-8000-000000000005','indicator--00000000-0000-4000-8000-000000000005',NULL,NULL,'indicator 5',NULL,NULL,'2026-01-01T00:00:00Z','2025-01-01T00:00:00.000Z',1,NULL,NULL,NULL);
INSERT INTO "tiops_indicator_legacy" VALUES('indicator--00000000-0000-4000-8000-000000000002','indicator--00000000-0000-4000-8000-000000000002',NULL,NULL,'indicator 2','malicious-activity',40.0,NULL,'2025-01-01T00:00:00.000Z',1,NULL,NULL,NULL);
CREATE TABLE tiops_lock (
    target TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE INDEX stix_current_type ON stix_current (type);
CREATE INDEX ThreatIntelIndicators_Id ON ThreatIntelIndicators (Id);
CREATE INDEX ThreatIntelIndicators_Value ON ThreatIntelIndicators (ObservableValue);
CREATE INDEX ThreatIntelObjects_StixType ON ThreatIntelObjects (StixType);
CREATE VIEW ThreatIntelligenceIndicator AS
SELECT l.IndicatorId, l.ExternalIndicatorId, l.SourceSystem, l.IndicatorProvider, l.Description, l.ThreatType, l.ConfidenceScore, l.ExpirationDateTime, l.TimeGenerated, l.Active, l.TrafficLightProtocolLevel, l.Tags, l.KillChainPhases, o.NetworkIP, o.NetworkSourceIP, o.NetworkDestinationIP, o.DomainName, o.Url, o.EmailSenderAddress, o.EmailSubject, o.FileName, o.FileHashType, o.FileHashValue, CAST(NULL AS TEXT) AS NetworkCidrBlock, CAST(NULL AS TEXT) AS MalwareNames, CAST(NULL AS TEXT) AS UserAgent
FROM tiops_indicator_legacy l LEFT JOIN (
    SELECT Id,
        MIN(CASE WHEN ObservableKey IN ('ipv4-addr:value', 'ipv6-addr:value') THEN ObservableValue END) AS NetworkIP,
        MIN(CASE WHEN ObservableKey = 'network-traffic:src_ref.value' THEN ObservableValue END) AS NetworkSourceIP,
        MIN(CASE WHEN ObservableKey = 'network-traffic:dst_ref.value' THEN ObservableValue END) AS NetworkDestinationIP,
        MIN(CASE WHEN ObservableKey = 'domain-name:value' THEN ObservableValue END) AS DomainName,
        MIN(CASE WHEN ObservableKey = 'url:value' THEN ObservableValue END) AS Url,
        MIN(CASE WHEN ObservableKey IN ('email-addr:value', 'email-message:from_ref.value') THEN ObservableValue END) AS EmailSenderAddress,
        MIN(CASE WHEN ObservableKey = 'email-message:subject' THEN ObservableValue END) AS EmailSubject,
        MIN(CASE WHEN ObservableKey = 'file:name' THEN ObservableValue END) AS FileName,
        MIN(CASE WHEN ObservableKey LIKE 'file:hashes.%' THEN REPLACE(REPLACE(SUBSTR(ObservableKey, 13), '''', ''), '-', '') END) AS FileHashType,
        MIN(CASE WHEN ObservableKey LIKE 'file:hashes.%' THEN ObservableValue END) AS FileHashValue
    FROM ThreatIntelIndicators GROUP BY Id
) o ON o.Id = l.IndicatorId;
CREATE TRIGGER stix_current_object_digest AFTER UPDATE OF object ON stix_current
FOR EACH ROW WHEN NEW.object IS NOT OLD.object AND NEW.object_digest IS OLD.object_digest
BEGIN UPDATE stix_current SET object_digest = NULL WHERE id = NEW.id; END;
COMMIT;
