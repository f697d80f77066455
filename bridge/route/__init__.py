"""One route's stages between receive and send: validate, batch, deliver, settle, memory budget."""
