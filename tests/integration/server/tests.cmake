spoke_script_test(test_server_api python3 ${CMAKE_CURRENT_LIST_DIR}/test_server_api.py LABELS integration TIMEOUT 180)
spoke_script_test(test_server_load python3 ${CMAKE_CURRENT_LIST_DIR}/test_server_load.py LABELS integration TIMEOUT 180)
spoke_script_test(test_server_auth python3 ${CMAKE_CURRENT_LIST_DIR}/test_server_auth.py LABELS integration TIMEOUT 120)
