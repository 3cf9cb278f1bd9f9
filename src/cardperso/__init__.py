"""cardperso: smart-card personalization and chip-encoding engine.

Third-generation Chinese social-security cards: the SSSE application and a PBOC 3.0 debit
application with electronic cash, prepared in batches and encoded through GlobalPlatform
secure channels on PC/SC encoders.
"""

__version__ = "0.1.0"
