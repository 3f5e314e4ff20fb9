"""GS1 EPCIS 2.0 in and out: documents mapped to signed attestations by one table
(`mapping.RULES`), and custody exported back as EPCIS 2.0.

Public surface: `document.read_document`, `importer.plan_import` / `importer.sign_plan` (the
mapping itself in `planner`, its data in `plan`),
`service.export_lot` / `service.export_shipment` (through `exporter.export_document`),
`mapping.RULES` / `mapping.markdown_table`. Nothing here imports the web framework; the API
and the command line call these same functions.
"""
