spoke_script_test(test_e2e_hub python3 ${CMAKE_CURRENT_LIST_DIR}/test_e2e_hub.py LABELS integration TIMEOUT 120)
