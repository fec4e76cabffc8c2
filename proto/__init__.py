"""Wire formats of linkstate: bytes <-> typed models.

Owns: the OrgInfo packet (model, grammar, codec), the TCP 691 frames, the SMTP and X-LINK2STATE lines.
May import: the standard library and `construct`. Never trio, structlog or `linkstate`.
"""
