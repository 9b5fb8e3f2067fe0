# sprig's implementation of the module the Greengrass Core SDK for Python imports
# (greengrasssdk 1.x). Written from the interface the SDK uses; see ARCHITECTURE.md.
