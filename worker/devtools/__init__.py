"""Tools for trying leadroute without a CRM: ``leadroute demo``, synthetic, realistic leads and the one
feeder that puts them into the sandbox CRM (:mod:`.feeder`), and the one supervisor that starts, watches
and stops the product's processes for the demo, the end-to-end benchmark and tests (:mod:`.processes`)."""
