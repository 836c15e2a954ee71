"""The file handed in is a notebook cut short (a broken upload): not valid JSON."""
