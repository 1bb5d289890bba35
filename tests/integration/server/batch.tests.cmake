spoke_script_test(test_server_batch python3 ${CMAKE_CURRENT_LIST_DIR}/test_server_batch.py LABELS integration TIMEOUT 180)
