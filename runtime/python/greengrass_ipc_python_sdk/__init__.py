# sprig's implementation of the IPC client the Greengrass Core SDK for Python imports.
