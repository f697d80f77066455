"""The bridge's data: rows, outcomes, tickets, errors and the configuration's typed form."""
