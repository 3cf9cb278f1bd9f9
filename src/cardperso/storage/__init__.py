"""Persistence shared by the line journal and the registry: SQLite and PostgreSQL."""
