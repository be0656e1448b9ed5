"""An intel object whose text tries to inject HTML and script into the report."""

from __future__ import annotations

XSS_NAME = '"><img src=x onerror="window.__xss=1">'
XSS_DESCRIPTION = "<script>window.__xss=2</script> and </script><script>window.__xss=3</script>"
XSS_ID = "malware--7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

XSS_OBJECT = f"""type: malware
spec_version: "2.1"
id: {XSS_ID}
created: 2024-10-01T00:00:00.000Z
modified: 2024-10-01T00:00:00.000Z
name: '{XSS_NAME}'
description: '{XSS_DESCRIPTION}'
is_family: false
labels: ['<b>bold</b>']
"""


