"""Detectors: Python modules (`module`, `python`, `tools`, `langgraph`) and n8n workflows."""
