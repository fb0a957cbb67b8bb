"""Ways into a chat other than the EVI chat socket (phone calls over Twilio Media Streams)."""
